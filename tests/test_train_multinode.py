"""Training across two Ray nodes (`ray.cluster_utils.Cluster` on this machine): one worker per node, so the
Paddle collective endpoints and the gloo rendezvous span nodes."""

import json
from pathlib import Path

import pytest

from ppipe.config import load_config
from ppipe.train.trainer import train

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


@pytest.fixture
def two_node_cluster():
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the head schedules, workers train
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_two_workers_on_two_nodes_train_together(tmp_path, digits_prepared, two_node_cluster):
    cluster, nodes = two_node_cluster
    cfg = load_config(QUICKSTART, [
        f"Global.output_dir={tmp_path}/out", "Global.image_shape=[3, 16, 16]", "Global.epochs=1",
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16", "DataLoader.Train.sampler.batch_size=64",
        "Ray.num_workers=2", "Ray.cpus_per_worker=1"])
    result = train(cfg, data=digits_prepared)
    assert result.epochs_completed == 1 and 0.0 <= result.top1 <= 1.0
    workers = [json.loads(p.read_text()) for p in Path(result.checkpoint).parent.glob("workers/*/*.json")]
    assert sorted(w["rank"] for w in workers) == [0, 1]
    assert {w["node_id"] for w in workers} == {n.node_id for n in nodes}  # one rank on each worker node
    assert len({w["endpoint"] for w in workers}) == 2
