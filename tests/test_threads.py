"""Small networks train on one CPU thread; the caller's thread count comes back afterwards."""
from __future__ import annotations

import torch

import trainwell as tw
from trainwell.train.threads import threads_for


def test_small_model_gets_one_thread_and_the_setting_is_restored():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        small, big = torch.nn.Linear(64, 10), torch.nn.Linear(4096, 4096)
        with threads_for(small, 32, torch.device("cpu")) as n:
            assert n == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with threads_for(big, 512, torch.device("cpu")) as n:
            assert n == 2 and torch.get_num_threads() == 2
        run = tw.fit("iris", save=False, verbose=False, sets=["train.epochs=2", "train.progress=false"])
        assert run.metrics["epochs_run"] == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
