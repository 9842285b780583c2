"""`ppipe.host.cpu_model`: the description the export's measurements and the 1x1-kernel choice record, read from
/proc/cpuinfo files as the two kinds of cloud host this project runs on write them."""

import pytest

from ppipe import host

# the first processor of each (abridged: the fields cpu_model reads, and flags around the ones it reports)
EMERALD_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
stepping\t: 2
flags\t\t: fpu avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: another CPU that must not be read
"""
ZEN5 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu avx avx2 fma avx512f avx512bw avx_vnni avx512_bf16 avx512_vnni
"""
OLD_XEON = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 79
model name\t: Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz
stepping\t: 1
flags\t\t: fpu avx avx2 fma
"""


@pytest.fixture
def cpuinfo(monkeypatch, tmp_path):
    def write(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(host, "CPUINFO", str(path))
        host._cpuinfo_fields.cache_clear()

    yield write
    host._cpuinfo_fields.cache_clear()


@pytest.mark.parametrize("text, expected, vendor", [
    (EMERALD_RAPIDS, "Intel(R) Xeon(R) Processor (family 6 model 207 stepping 2; AVX-512, VNNI, BF16, AMX)",
     "GenuineIntel"),
    (ZEN5, "AMD EPYC (family 26 model 2 stepping 1; AVX-512, VNNI, BF16)", "AuthenticAMD"),
    (OLD_XEON, "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz (family 6 model 79 stepping 1; AVX2)", "GenuineIntel"),
])
def test_the_description_tells_generic_model_names_apart(cpuinfo, text, expected, vendor):
    cpuinfo(text)
    assert host.cpu_model() == expected
    assert host.cpu_vendor() == vendor


def test_without_cpuinfo_the_platform_names_the_cpu(cpuinfo, monkeypatch, tmp_path):
    monkeypatch.setattr(host, "CPUINFO", str(tmp_path / "absent"))
    host._cpuinfo_fields.cache_clear()
    monkeypatch.setattr(host.platform, "processor", lambda: "arm")
    assert host.cpu_model() == "arm"
    assert host.cpu_vendor() is None


def test_this_machine_has_a_description():
    assert host.cpu_model().strip()
