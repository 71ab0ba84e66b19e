"""Cross-fitted packed members (nn/crossfit.py, train/crossfit.py): each member holds out one fold of the
pooled training, validation and test rows, learns nothing from it, early stopping watches the out-of-fold
loss of every training and validation row, and each test row is scored by the member that held it out."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer

import trainwell as tw
from trainwell.nn.crossfit import crossfit_choice, fold_groups
from trainwell.nn.ensemble import PackedMLP
from trainwell.nn.heads import make_head
from trainwell.run.loading import score_test_split
from trainwell.train.crossfit import assign_folds

QUIET = ["train.progress=false", "train.monitor=false"]


def out_of_fold(out: torch.Tensor, fold: torch.Tensor) -> torch.Tensor:
    """By hand: ``[rows, members, outputs]`` every member's outputs -> each row's from the member holding it out."""
    return out.gather(1, fold.view(-1, 1, 1).expand(-1, 1, out.shape[-1])).squeeze(1)


class Keep:
    """A fit callback keeping the final training state."""

    def on_train_end(self, state) -> None:
        self.state = state


def test_folds_are_even_within_each_class_and_fixed_by_the_seed():
    y = torch.tensor([0] * 37 + [1] * 13 + [2] * 22)
    folds = assign_folds(y, classes=True, k=8, seed=0)
    assert torch.equal(folds, assign_folds(y, classes=True, k=8, seed=0))       # a resumed run's folds
    assert not torch.equal(folds, assign_folds(y, classes=True, k=8, seed=1))
    sizes = torch.bincount(folds, minlength=8)
    assert int(sizes.max() - sizes.min()) <= 1
    for c in range(3):
        per_class = torch.bincount(folds[y == c], minlength=8)
        assert int(per_class.max() - per_class.min()) <= 1          # stratified: every member holds out its share


def test_the_default_crossfits_small_tables_only_and_never_the_users_validation_rows():
    assert crossfit_choice("auto", 8, 87, False)[0]
    assert crossfit_choice("auto", 8, 499, False)[0] and not crossfit_choice("auto", 8, 500, False)[0]
    assert not crossfit_choice("auto", 8, 87, True)[0]
    assert not crossfit_choice("auto", 1, 87, False)[0]
    assert crossfit_choice(True, 8, 5_000, True)[0]
    on, line = crossfit_choice(False, 8, 87, False)
    assert not on and "model.crossfit=false" in line


def test_a_member_learns_nothing_from_the_rows_it_holds_out():
    torch.manual_seed(0)
    arch = {"members": 4, "crossfit": True, "task": "binary", "n_inputs": 5, "hidden": [7], "n_outputs": 1,
            "activation": "relu"}
    model = PackedMLP(arch).train()
    x, y = torch.randn(12, 5), torch.randint(0, 2, (12,)).float()
    fold = torch.tensor([0] * 6 + [1] * 6)
    loss = make_head("binary", members=4).loss_fn(model(torch.cat([x, fold[:, None].float()], 1)), y)
    loss.backward()
    grads = model.blocks[0].linear.weight.grad
    # member 0 holds out rows 0-5, member 1 rows 6-11: each learns from the other half only
    own = PackedMLP({**arch, "crossfit": False})
    own.load_state_dict(model.state_dict())
    own.train()
    half = make_head("binary", members=4).loss_fn(own(x[6:]), y[6:])
    half.backward()
    torch.testing.assert_close(grads[0], own.blocks[0].linear.weight.grad[0] * 6 / 12)
    assert torch.count_nonzero(grads[2]) > 0 and torch.count_nonzero(grads[3]) > 0


def test_validation_is_each_rows_loss_under_the_member_that_held_it_out():
    keep = Keep()
    run = tw.fit("breast_cancer", save=False, verbose=False, sets=QUIET, callbacks=[keep])
    assert run.arch["crossfit"] and run.arch["members"] == 8
    state = keep.state
    X, y = state.data.X_val, state.data.y_val
    assert X.shape[1] == run.arch["n_inputs"] + 1 and X.data_ptr() == state.data.X_train.data_ptr()  # one pool
    fold = X[:, -1].long()
    with torch.no_grad():
        state.model.train()
        members = state.model.member_outputs(X[:, :-1])              # [rows, 8, 1], the restored epoch
        state.model.eval()
    oof = out_of_fold(members, fold).squeeze(-1)
    by_hand = F.binary_cross_entropy_with_logits(oof, y).item()
    best = run.history.loc[run.history.epoch == run.metrics["best_epoch"], "val_loss"].item()
    assert by_hand == pytest.approx(best, rel=1e-5)
    assert run.metrics["val"]["loss"] == pytest.approx(by_hand, rel=1e-5)
    # the whole ensemble's score on the pool (train) is better than the out-of-fold one (val)
    assert run.metrics["train"]["loss"] < run.metrics["val"]["loss"]


def test_predictions_average_all_members_and_take_ordinary_rows(tmp_path):
    X, y = load_breast_cancer(return_X_y=True)
    run = tw.fit(X=X, y=y, out=tmp_path / "run", verbose=False, sets=QUIET)
    assert run.arch["crossfit"]
    model = run.model.eval()
    rows = torch.from_numpy(run.pre.transform_X(X[:20]))
    with torch.no_grad():
        model.train()
        members = torch.sigmoid(model.member_outputs(rows)).squeeze(-1)    # [20, 8]
        model.eval()
    np.testing.assert_allclose(run.predict_proba(X[:20])[:, 1], members.mean(1).numpy(), atol=1e-6)
    loaded = tw.load(tmp_path / "run")
    np.testing.assert_allclose(loaded.predict_proba(X[:20]), run.predict_proba(X[:20]), atol=1e-6)
    summary = run.data_summary                        # the report names the pool, not only the split
    pool = summary["n_train"] + summary["n_val"] + summary["n_test"]
    assert summary["crossfit"].startswith(f"{pool:,} training, validation and test rows pooled into 8 folds")
    assert summary["crossfit"] in (tmp_path / "run" / "report.html").read_text()


def test_given_validation_rows_stay_the_validation_split():
    X, y = load_breast_cancer(return_X_y=True)
    run = tw.fit(X=X[:400], y=y[:400], validation_data=(X[400:], y[400:]), save=False, verbose=False, sets=QUIET)
    assert run.arch["members"] == 8 and not run.arch["crossfit"]
    off = tw.fit("breast_cancer", save=False, verbose=False, sets=[*QUIET, "model.crossfit=false"])
    assert not off.arch["crossfit"] and "crossfit" not in off.data_summary


def test_batch_and_patience_count_the_pooled_rows_each_epoch_steps_through(capsys):
    X, y = load_breast_cancer(return_X_y=True)
    keep = Keep()
    run = tw.fit(X=X, y=y, save=False, sets=QUIET, callbacks=[keep])
    assert run.arch["crossfit"]
    summary = run.data_summary
    pool = summary["n_train"] + summary["n_val"] + summary["n_test"]
    assert keep.state.data.X_train.shape[0] == pool                    # an epoch steps through the pool
    steps = math.ceil(pool / run.spec.train.batch_size)
    assert keep.state.steps_per_epoch == steps
    assert run.spec.stop.patience == math.ceil(1000 / steps)           # at least 1,000 steps of patience
    notes = " ".join(capsys.readouterr().out.split())
    assert f"an epoch of {pool} rows" in notes and f"an epoch is only {steps} steps" in notes


def test_each_fold_is_scored_by_its_member_alone_as_by_every_member_then_picked():
    torch.manual_seed(0)
    arch = {"members": 8, "task": "multiclass", "n_inputs": 5, "hidden": [16, 8], "n_outputs": 3,
            "activation": "relu", "crossfit": True}
    model = PackedMLP(arch).eval()
    x = torch.randn(203, 5)
    fold = torch.randint(0, 8, (203,))
    fold[fold == 3] = 4                                      # an empty fold, and uneven ones
    index, valid = fold_groups(fold, 8)
    assert index.shape == (8, int(torch.bincount(fold).max())) and not valid[3].any()
    assert sorted(index[valid].tolist()) == list(range(203))           # every row once
    assert all(bool((fold[index[j][valid[j]]] == j).all()) for j in range(8))
    with torch.no_grad():
        scored = model(torch.cat([x, fold.unsqueeze(1).float()], 1))
        model.train()
        every = model.member_outputs(x)                                  # [rows, 8, 3]
    torch.testing.assert_close(scored, out_of_fold(every, fold), rtol=1e-5, atol=1e-6)


def test_the_test_rows_train_the_other_members_and_each_is_scored_by_its_own():
    keep = Keep()
    run = tw.fit("breast_cancer", save=False, verbose=False, sets=QUIET, callbacks=[keep])
    d, summary = keep.state.data, run.data_summary
    n_tv, n_test = summary["n_train"] + summary["n_val"], summary["n_test"]
    assert run.arch["crossfit_test"] and n_test > 0
    assert d.X_train.shape[0] == n_tv + n_test                     # the test rows train ...
    assert d.X_val.shape[0] == n_tv                                # ... but early stopping does not watch them
    torch.testing.assert_close(d.X_test, d.X_train[n_tv:])         # the same tagged rows: each keeps its fold
    fold = d.X_test[:, -1].long()
    assert len(torch.unique(fold)) == 8
    with torch.no_grad():
        keep.state.model.train()
        members = keep.state.model.member_outputs(d.X_test[:, :-1])
        keep.state.model.eval()
        ensemble = keep.state.model(d.X_test[:, :-1]).squeeze(-1)
    held_out = F.binary_cross_entropy_with_logits(out_of_fold(members, fold).squeeze(-1), d.y_test).item()
    assert run.metrics["test"]["loss"] == pytest.approx(held_out, rel=1e-5)
    # the whole ensemble, seven of whose members learned each test row, would score them better: not reported
    assert F.binary_cross_entropy_with_logits(ensemble, d.y_test).item() < held_out
    # rebuilt from the run's spec (trainwell evaluate RUN --checkpoint ...), the test scores are the same ones
    rebuilt = score_test_split(run)
    assert rebuilt.pop("confusion_matrix") == run.metrics["test"]["confusion_matrix"]
    assert rebuilt == pytest.approx({k: v for k, v in run.metrics["test"].items() if k != "confusion_matrix"}, rel=1e-5)
    # the test rows are now rows the model learned from: evaluate warns on them
    assert len(run.seen_rows.train) == len(np.unique(run.seen_rows.train))
    X, y = load_breast_cancer(return_X_y=True)
    assert sum(run.seen_rows.count(run.pre.encode_X(X))) == len(X)


def test_crossfit_test_false_and_a_given_test_split_keep_the_test_rows_out_of_training(tmp_path):
    keep = Keep()
    off = tw.fit("breast_cancer", save=False, verbose=False, sets=[*QUIET, "model.crossfit_test=false"],
                 callbacks=[keep])
    d, summary = keep.state.data, off.data_summary
    assert off.arch["crossfit"] and not off.arch["crossfit_test"]
    assert d.X_train.shape[0] == summary["n_train"] + summary["n_val"]
    assert d.X_test.shape[1] == off.arch["n_inputs"]                 # no fold: the whole ensemble scores it
    with torch.no_grad():
        ensemble = keep.state.model(d.X_test)
    assert off.metrics["test"]["loss"] == pytest.approx(
        F.binary_cross_entropy_with_logits(ensemble.squeeze(-1), d.y_test).item(), rel=1e-5)
    X, y = load_breast_cancer(return_X_y=True)
    np.savez(tmp_path / "given.npz", X=X[:450], y=y[:450], X_test=X[450:], y_test=y[450:])
    given = tw.fit(str(tmp_path / "given.npz"), save=False, verbose=False, sets=QUIET, callbacks=[keep])
    assert given.arch["crossfit"] and not given.arch["crossfit_test"]   # a test set the user gave is never trained on
    assert keep.state.data.X_test.shape == (len(X) - 450, given.arch["n_inputs"])
