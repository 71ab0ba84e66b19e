import json, pandas as pd
from sklearn.model_selection import train_test_split
from trainwell.data.labels import detect_task
found = json.load(open("found.json"))
dev, conf = [], []
k = 0
for r in found:
    if r["rows"] > 5000:
        continue
    y = pd.read_csv(f"tables/{r['file']}", usecols=[r["target"]], low_memory=False)[r["target"]].dropna()
    if y.nunique() < 2 or len(y) < 100:
        continue
    seen, _ = train_test_split(y, test_size=0.2, random_state=0)
    task = "regression" if detect_task(seen.to_numpy()) == "regression" else "classification"
    e = {"file": r["file"], "target": r["target"], "task": task, "rows": r["rows"]}
    (dev if k % 2 == 0 else conf).append(e); k += 1
import os
for name, s in (("dev", dev), ("conf", conf)):
    os.makedirs(name, exist_ok=True)
    for e in s:
        if not os.path.exists(f"{name}/{e['file']}"):
            os.symlink(f"/tmp/mc/tables/{e['file']}", f"{name}/{e['file']}")
    json.dump(s, open(f"{name}/suite.json", "w"), indent=1)
    print(name, len(s), ",".join(e["file"][:-4] for e in s))
