"""Run storage on S3 (a real S3 API: moto's server over HTTP).

Its own module so that the S3 endpoint exists before this module's Ray instance starts: Ray's processes
take their environment (AWS_ENDPOINT_URL, credentials) from the moment Ray starts.
"""

from pathlib import Path

from ppipe.train.trainer import train
from tests.test_train import _cfg


def test_run_storage_on_s3_holds_the_checkpoints(tmp_path, digits_prepared, local_ray, s3_bucket):
    import s3fs

    result = train(_cfg(tmp_path, "Global.epochs=1", "Ray.num_workers=1", f"Ray.storage_path={s3_bucket}/runs"),
                   data=digits_prepared)
    assert result.checkpoint.startswith("s3://")
    fs = s3fs.S3FileSystem()
    files = fs.ls(result.checkpoint, detail=False)
    assert {Path(f).name for f in files} >= {"model.pdparams", "optimizer.pdopt", "state.json"}
    assert Path(result.run_dir, "model.pdparams").exists()

