"""Cross-fitting a packed ensemble's members: each member holds out one fold of the rows.

On a table of a few hundred rows the validation split holds a few dozen rows, and the epoch early
stopping restores is partly the luck of those rows (docs/tabular.md). Cross-fitting uses every row
both to train and to validate: the training and validation rows are pooled and cut into k folds, one
per member; member j trains on every fold but j, and each row's *out-of-fold* prediction is the one
of the member that did not train on it. Early stopping then watches the out-of-fold loss of all the
pooled rows, a validation set about nine times larger than the split, and every member restores that
one epoch. Prediction averages all k members, as for any packed ensemble. This is k-fold bagging as
AutoGluon does it for tables (Erickson et al., "AutoGluon-Tabular: Robust and Accurate AutoML for
Structured Data", 2020), here trained at once: the members of a packed network (nn/ensemble.py) see
the same batches, and a member's loss on the rows it holds out carries no gradient.

The fold of each pooled row travels as one extra, last input column of the training tensors
(train/crossfit.py), so batches, permutations, resume and evaluation need nothing new: a packed
network built with ``arch["crossfit"]`` reads that column when its input has one column more than its
layers take, and only then. Inputs without it (the test split, ``predict``, an export) get the
ensemble's average.
"""
from __future__ import annotations

import torch

# From this many validation rows one split is steady enough: on the tables measured (docs/tabular.md) the gain
# there was at most 0.0014, at up to three times the training time (the pooled loss keeps falling for longer).
VALIDATION_ROWS = 500


def crossfit_choice(setting: bool | str, members: int, validation_rows: int, validation_given: bool,
                    test_rows: int = 0) -> tuple[bool, str]:
    """Whether ``model.crossfit`` cross-fits the packed members, and the decision line.

    ``auto``: on for a packed ensemble whose validation split has fewer than ``VALIDATION_ROWS`` rows (tables
    of up to about 5,000 rows),
    unless the validation rows are the user's own (``fit(validation_data=...)``), which are then used as
    given. Measured on the development tables and confirmed on tables never used to choose it
    (docs/tabular.md, "Cross-fitted members"). ``test_rows``: test rows that join the folds
    (``model.crossfit_test``, train/crossfit.py), named in the decision line.
    """
    if members < 2:
        if setting is True:
            return False, "crossfit: off (model.crossfit=true needs a packed ensemble: model.ensemble of 2 or more)"
        return False, ""
    if setting is False:
        return False, "crossfit: off (model.crossfit=false: the members share one validation split)"
    if setting == "auto" and validation_given:
        return False, "crossfit: off (the validation rows are given: fit(validation_data=...))"
    if setting == "auto" and validation_rows >= VALIDATION_ROWS:
        return False, ""
    why = ("model.crossfit=true" if setting is True else
           f"model.crossfit=auto: {validation_rows:,} validation rows, fewer than {VALIDATION_ROWS:,}")
    test = (f"; the {test_rows:,} test rows join the folds and train the other members, each scored only by the "
            f"member that holds it out and not watched by early stopping, so its test score is one member's, held "
            f"out (model.crossfit_test=false keeps them out of training)" if test_rows else "")
    return True, (f"crossfit: the training and validation rows pooled and cut into {members} folds; member j "
                  f"trains on the other folds, early stopping watches the out-of-fold loss of every training and "
                  f"validation row ({why}; k-fold bagging, Erickson et al. 2020){test}; model.crossfit=false keeps "
                  f"one validation split")


def crossfitted(arch: dict) -> bool:
    """Whether an architecture's members are cross-fitted: packed (more than one member), and crossfit on."""
    return bool(arch.get("crossfit")) and int(arch.get("members", 1)) > 1


def pools_test_rows(arch: dict) -> bool:
    """Whether the cross-fitted members also train on the test rows, each scored by its own member
    (``model.crossfit_test``, train/crossfit.py)."""
    return crossfitted(arch) and bool(arch.get("crossfit_test"))


def split_fold_column(x: torch.Tensor, n_inputs: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(inputs, fold per row)`` when ``x`` carries the fold column after its ``n_inputs`` inputs,
    else ``(x, None)``."""
    if x.dim() == 2 and x.shape[1] == n_inputs + 1:
        return x[:, :n_inputs].contiguous(), x[:, n_inputs].long()
    return x, None


def without_folds(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` without the fold column when ``model`` is cross-fitted and ``x`` has one: the rows as the whole
    ensemble scores them (in-sample training scores, an export's sample inputs)."""
    if getattr(model, "crossfit", False):
        return split_fold_column(x, model.n_inputs)[0]
    return x


def trains_on(fold: torch.Tensor, members: int) -> torch.Tensor:
    """``[members, rows, 1]``: True where member j trains on the row (the row's fold is not j)."""
    return (fold.unsqueeze(0) != torch.arange(members, device=fold.device).unsqueeze(1)).unsqueeze(-1)


def fold_groups(fold: torch.Tensor, members: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows grouped by the member that holds them out: ``(index, valid)``, both ``[members, m]`` with m
    the largest fold's size; ``index[j]`` lists fold j's rows (padded with row indices where ``valid`` is
    False, as folds differ by a row). Scoring each row with that one member costs 1/members of scoring
    every row with every member."""
    order = torch.argsort(fold, stable=True)
    counts = torch.bincount(fold, minlength=members)
    width = int(counts.max()) if fold.numel() else 0
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(width, device=fold.device)
    valid = position.unsqueeze(0) < counts.unsqueeze(1)
    slot = (starts.unsqueeze(1) + position.unsqueeze(0)).clamp(max=max(fold.numel() - 1, 0))
    return order[slot], valid
