"""``python -m trainwell.tune.worker STUDY_DIR/tune.json INDEX``: one extra worker process of a study."""
from trainwell.tune.search import worker_main

if __name__ == "__main__":
    worker_main()
