"""Bootstrap intervals over several sets and paired comparisons (metrics/bootstrap.py), plus argument checks.

Helpers and data generators come from tests/test_bootstrap.py; expected values from reference loops over the same
resample indices (module docstring there).
"""

import numpy as np
import pytest
from test_bootstrap import SETS, _bernoulli_hits, dimension_set, discrete_set, ov_set, project_scores, resampled

from affectgpt.data.records import DataError
from affectgpt.metrics import bootstrap as bs
from affectgpt.metrics.unibench import hit_rate
from affectgpt.metrics.wheel import get_wheel

EXACT = 1e-12  # float64 sums of the same numbers in another order (tests/test_bootstrap.py)


@pytest.fixture(scope="module")
def wheel(official_wheel_dir):
    return get_wheel(official_wheel_dir)


def test_nine_set_mean_equals_a_reference_loop(wheel):
    sets = {
        "MER2023": ("discrete", *discrete_set(30, 4)),
        "CMUMOSI": ("dimension", *dimension_set(30, 5)),
        "OVMERDPlus": ("ovlabel", *ov_set(30, 6)),
    }
    per = {name: bs.per_sample(task, gt, pred, wheel, name) for name, (task, gt, pred) in sets.items()}
    result = bs.nine_set_mean_interval(per, n_resamples=25, seed=11)
    replicates = []
    for name, (task, gt, pred) in sets.items():
        indices = bs.resample_indices(len(per[name].names), 25, seed=11, key=name)
        names = per[name].names
        expected = [project_scores(task, *resampled(names, rows, gt, pred), wheel)["score"] for rows in indices]
        np.testing.assert_allclose(result.per_dataset[name].samples, expected, rtol=0, atol=EXACT)
        replicates.append(expected)
        assert abs(result.per_dataset[name].point - project_scores(task, gt, pred, wheel)["score"]) < EXACT
    np.testing.assert_allclose(result.mean.samples, np.mean(replicates, axis=0), rtol=0, atol=EXACT)
    points = [project_scores(task, gt, pred, wheel)["score"] for task, gt, pred in sets.values()]
    assert abs(result.mean.point - sum(points) / 3) < EXACT


def test_sets_are_resampled_independently():
    """Four copies of one set under different names: independent resamples halve the mean's spread
    (sd / sqrt(4)); shared indices would leave it unchanged. With 1,000 replicates an sd is estimated to
    ~2.2 % (1 / sqrt(2 * 1000)), so the ratio's band of +-0.05 around 0.5 is > 3 SE wide."""
    ps = _bernoulli_hits(np.random.default_rng(0), 300, 0.6)
    result = bs.nine_set_mean_interval({f"set{k}": ps for k in range(4)}, n_resamples=1000)
    sd_set = np.std(result.per_dataset["set0"].samples)
    assert 0.45 < np.std(result.mean.samples) / sd_set < 0.55
    np.testing.assert_array_equal(result.per_dataset["set2"].samples, bs.bootstrap(ps, key="set2").samples)


# ---- (d) paired difference ----------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(SETS))
def test_identical_runs_differ_by_exactly_zero(task, wheel):
    gt, pred = SETS[task](60, seed=8)
    a = {"X": bs.per_sample(task, gt, pred, wheel, "X"), "Y": bs.per_sample(task, gt, dict(pred), wheel, "Y")}
    b = {"X": bs.per_sample(task, gt, dict(pred), wheel, "X"), "Y": bs.per_sample(task, gt, pred, wheel, "Y")}
    result = bs.paired_difference(a, b, n_resamples=200)
    for d in [*result.per_dataset.values(), result.mean]:
        assert d.point == 0.0 and d.low == 0.0 and d.high == 0.0 and d.p_b_le_a == 1.0


def _better_everywhere(task: str, gt: dict) -> tuple[dict, dict]:
    """(worse, better) predictions: the better run scores higher on every scorable sample."""
    if task == "dimension":
        return (
            {n: "negative" if v > 0 else "positive" for n, v in gt.items()},
            {n: "positive" if v > 0 else "negative" for n, v in gt.items()},
        )
    return {n: "[xyzzy]" for n in gt}, {n: g if g.startswith("[") else f"[{g}]" for n, g in gt.items()}


@pytest.mark.parametrize("task", list(SETS))
def test_run_better_on_every_sample_has_a_positive_interval(task, wheel):
    gt, _ = SETS[task](60, seed=9)
    worse, better = _better_everywhere(task, gt)
    a, b = bs.per_sample(task, gt, worse, wheel, "X"), bs.per_sample(task, gt, better, wheel, "X")
    result = bs.paired_difference(a, b, n_resamples=300)
    d = result.per_dataset["X"]
    assert d.low > 0 and d.p_b_le_a == 0.0 and result.mean.low > 0
    assert abs(d.point - (bs.point_scores(b)["score"] - bs.point_scores(a)["score"])) < EXACT
    reverse = bs.paired_difference(b, a, n_resamples=300).per_dataset["X"]
    assert reverse.high < 0 and reverse.p_b_le_a == 1.0


def test_paired_replicates_share_indices_with_a_reference_loop(wheel):
    gt, pred_a = discrete_set(40, 10)
    _, pred_b = discrete_set(40, 11)
    a, b = bs.discrete_samples(gt, pred_a, wheel, "MER2024"), bs.discrete_samples(gt, pred_b, wheel, "MER2024")
    d = bs.paired_difference(a, b, n_resamples=40, seed=5).per_dataset["MER2024"]
    indices = bs.resample_indices(40, 40, seed=5, key="MER2024")
    expected = [
        hit_rate(*resampled(a.names, r, gt, pred_b), wheel).score
        - hit_rate(*resampled(a.names, r, gt, pred_a), wheel).score
        for r in indices
    ]
    np.testing.assert_allclose(d.samples, expected, rtol=0, atol=EXACT)
    assert d.p_b_le_a == np.mean(np.asarray(expected) <= bs.TIE)  # ties (equal scores) count as B <= A
    assert 0 < d.p_b_le_a < 1


def test_paired_inputs_must_match(wheel):
    gt, pred = discrete_set(20, 12)
    a = bs.discrete_samples(gt, pred, wheel, "MER2023")
    renamed = {("other" if n == "s0003" else n): v for n, v in gt.items()}
    b = bs.discrete_samples(renamed, {("other" if n == "s0003" else n): v for n, v in pred.items()}, wheel, "MER2023")
    with pytest.raises(DataError, match="s0003"):
        bs.paired_difference(a, b)
    other_gt = dict(gt, s0005="neutral" if gt["s0005"] != "neutral" else "happy")
    with pytest.raises(DataError, match="different ground truth"):
        bs.paired_difference(a, bs.discrete_samples(other_gt, pred, wheel, "MER2023"))
    with pytest.raises(ValueError, match="only A \\['MER2023'\\]"):
        bs.paired_difference({"MER2023": a}, {"MER2024": a})
    dim = bs.dimension_samples({n: 1.0 for n in gt}, {n: "positive" for n in gt}, "MER2023")
    with pytest.raises(ValueError, match="discrete.*dimension"):
        bs.paired_difference(a, dim)
    ov_gt, ov_pred = ov_set(20, 15)
    ov_other = dict(ov_gt, s0004="[neutral]")  # s0004 is kept in some wheel, now in none
    with pytest.raises(DataError, match="different ground truth"):
        bs.paired_difference(bs.ov_samples(ov_gt, ov_pred, wheel, "OV"), bs.ov_samples(ov_other, ov_pred, wheel, "OV"))
    with pytest.raises(DataError, match="different ground truth"):
        bs.paired_difference(dim, bs.dimension_samples({n: -1.0 for n in gt}, {n: "positive" for n in gt}, "MER2023"))
    with pytest.raises(DataError, match="A has 20 scored samples, run B 19"):
        bs.paired_difference(
            dim, bs.dimension_samples(dict(dict.fromkeys(gt, 1.0), s0000=0.0), dict.fromkeys(gt, "positive"), "MER2023")
        )


def test_paired_mean_is_the_mean_of_the_set_differences(wheel):
    runs = {}
    for name, (task, make) in {"MER2023": ("discrete", discrete_set), "SIMS": ("dimension", dimension_set)}.items():
        gt, pred_a = make(50, 16)
        _, pred_b = make(50, 17)
        expected = project_scores(task, gt, pred_b, wheel)["score"] - project_scores(task, gt, pred_a, wheel)["score"]
        runs[name] = (
            bs.per_sample(task, gt, pred_a, wheel, name),
            bs.per_sample(task, gt, pred_b, wheel, name),
            expected,
        )
    a, b = {k: v[0] for k, v in runs.items()}, {k: v[1] for k, v in runs.items()}
    result = bs.paired_difference(a, b, n_resamples=50)
    for name, (_, _, expected) in runs.items():
        assert abs(result.per_dataset[name].point - expected) < EXACT
    assert abs(result.mean.point - (runs["MER2023"][2] + runs["SIMS"][2]) / 2) < EXACT
    np.testing.assert_allclose(
        result.mean.samples,
        (result.per_dataset["MER2023"].samples + result.per_dataset["SIMS"].samples) / 2,
        rtol=0,
        atol=EXACT,
    )


# ---- arguments, errors, formatting --------------------------------------------------------------------


def test_per_sample_arrays_are_validated():
    names = ("a", "b")
    with pytest.raises(ValueError, match="hits .* and kept .* must be equal 2-D"):
        bs.HitSamples(names, np.zeros((5, 2)), np.zeros((5, 3), bool))
    with pytest.raises(ValueError, match="must be equal 2-D"):
        bs.HitSamples(names, np.zeros(2), np.zeros(2, bool))
    with pytest.raises(ValueError, match="3 names for 2 samples"):
        bs.HitSamples(("a", "b", "c"), np.zeros((5, 2)), np.zeros((5, 2), bool))
    with pytest.raises(ValueError, match="differ"):
        bs.DimensionSamples(names, np.zeros(2, bool), np.zeros(3, bool))
    with pytest.raises(ValueError, match="1 names for 2 samples"):
        bs.DimensionSamples(("a",), np.zeros(2, bool), np.zeros(2, bool))
    with pytest.raises(ValueError, match="equal 2-D arrays"):
        bs.OVSamples(names, np.zeros((5, 2)), np.zeros((5, 2)), np.zeros((4, 2), bool))
    with pytest.raises(ValueError, match="3 names for 2 samples"):
        bs.OVSamples(("a", "b", "c"), np.zeros((5, 2)), np.zeros((5, 2)), np.zeros((5, 2), bool))


def test_bad_arguments_are_clear_errors(wheel):
    gt, pred = discrete_set(10, 13)
    ps = bs.discrete_samples(gt, pred, wheel, "MER2023")
    for kwargs, message in [
        ({"n_resamples": 0}, "n_resamples"),
        ({"seed": -1}, "seed"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": 0.0}, "alpha"),
        ({"statistic": "recall"}, "no statistic 'recall'"),
    ]:
        with pytest.raises(ValueError, match=message):
            bs.bootstrap(ps, **kwargs)
    with pytest.raises(DataError, match="s0002"):
        bs.discrete_samples(gt, {n: v for n, v in pred.items() if n != "s0002"}, wheel, "MER2023")
    many_gt, _ = discrete_set(30, 13)
    with pytest.raises(DataError, match=r"21 GT name\(s\) have no prediction: .*s0019 \.\.\. \(21 in all\)"):
        bs.ov_samples(many_gt, {n: "[]" for n in list(many_gt)[21:]}, wheel, "OV")
    with pytest.raises(DataError, match=r"20 GT name\(s\) have no prediction: .*s0019$"):
        bs.ov_samples(many_gt, {n: "[]" for n in list(many_gt)[20:]}, wheel, "OV")
    with pytest.raises(DataError, match="b.*no sentiment"):
        bs.dimension_samples({"a": 1.0, "b": -1.0}, {"a": "positive"}, "SIMS")
    with pytest.raises(ValueError, match="SIMS: no scorable sample"):
        bs.bootstrap(bs.dimension_samples({"a": 0.0}, {"a": "positive"}, "SIMS"))
    with pytest.raises(ValueError, match="unknown task"):
        bs.per_sample("regression", gt, pred, wheel)
    with pytest.raises(ValueError, match="needs an emotion wheel"):
        bs.per_sample("ovlabel", gt, pred, None)
    with pytest.raises(ValueError, match="no dataset"):
        bs.nine_set_mean_interval({})


def test_interval_width_follows_alpha_and_seed_is_deterministic(wheel):
    gt, pred = ov_set(200, 14)
    ps = bs.ov_samples(gt, pred, wheel, "OVMERDPlus")
    wide, narrow = bs.bootstrap(ps, alpha=0.05), bs.bootstrap(ps, alpha=0.2)
    assert wide.low < narrow.low <= wide.point <= narrow.high < wide.high
    np.testing.assert_array_equal(wide.samples, bs.bootstrap(ps).samples)
    assert wide.to_dict() == {
        "point": wide.point,
        "low": wide.low,
        "high": wide.high,
        "alpha": 0.05,
        "n_resamples": 1000,
        "method": "percentile bootstrap",
    }


def test_format_interval():
    iv = bs.Interval(0.7854, 0.769, 0.802, np.zeros(1))
    assert bs.format_interval(iv) == "78.54 [76.90, 80.20]"
    assert bs.format_interval(iv, scale=1, digits=3) == "0.785 [0.769, 0.802]"
    d = bs.Difference(0.012, -0.004, 0.029, np.zeros(1), p_b_le_a=0.1)
    assert bs.format_interval(d, signed=True) == "+1.20 [-0.40, +2.90]"
    assert d.to_dict()["p_b_le_a"] == 0.1
