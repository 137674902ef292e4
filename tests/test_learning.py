"""Meta-training must change what one adaptation step achieves (issue 3), measured on
held-out tasks with the default MetaConfig — a short run, not a benchmark.

The numbers behind the margins (benchmarks/RESULTS.md, 4 seeds of this exact setting):
post-adaptation NR 0.28 / 0.08 / 0.23 / 0.28 after meta-training vs about 0.0 for the
untrained network; post minus pre 0.22 / -0.04 / 0.11 / 0.11.
"""

import torch

import metadqn


def test_meta_training_on_gridnav_improves_held_out_adaptation():
    family = metadqn.make_family("gridnav")
    train, test = family.split(40, 20, seed=0)
    pre, post, untrained_post = [], [], []
    for seed in (0, 1):
        learner = metadqn.MAMLDQN(family, iterations=300, eval_every=0, checkpoint_every=0, seed=seed)
        untrained = learner.adaptation_returns(test, steps=(1,), runs=4, seed=3)["nr"]
        learner.meta_train(train, progress=False)
        nr = learner.adaptation_returns(test, steps=(0, 1), runs=4, seed=3)["nr"]
        pre.append(float(nr[0].mean()))
        post.append(float(nr[1].mean()))
        untrained_post.append(float(untrained[1].mean()))
    pre_m, post_m, untrained_m = (sum(x) / len(x) for x in (pre, post, untrained_post))
    # one gradient step on one episode of a new task: better than before it ...
    assert post_m - pre_m >= 0.05, (pre, post)
    # ... and better than the same step from an untrained network
    assert post_m - untrained_m >= 0.10, (untrained_post, post)
    assert torch.isfinite(torch.tensor(post)).all()
    print(f"pre {pre} post {post} untrained post {untrained_post}")
