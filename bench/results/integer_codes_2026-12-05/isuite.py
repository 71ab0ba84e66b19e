import json, os, pandas as pd
from sklearn.model_selection import train_test_split
from trainwell.data.labels import detect_task
found = json.load(open("ifound.json"))
out = {"idev": [], "iconf": []}
k = 0
for r in found:
    if r["rows"] > 3000:
        continue
    f = pd.read_csv(f"itables/{r['file']}", low_memory=False)
    y = f[r["target"]].dropna()
    if y.nunique() < 2 or len(y) < 100:
        continue
    seen, _ = train_test_split(y, test_size=0.2, random_state=0)
    task = "regression" if detect_task(seen.to_numpy()) == "regression" else "classification"
    name = "idev" if k % 2 == 0 else "iconf"; k += 1
    os.makedirs(name, exist_ok=True)
    g = f.copy()
    for c, _ in r["cols"]:
        g[c + "_code"] = g[c].map(lambda v: None if pd.isna(v) else f"c{int(v)}")
    stem = r["file"][:-4]
    f.to_csv(f"{name}/{stem}.csv", index=False)
    g.to_csv(f"{name}/{stem}__code.csv", index=False)
    for file in (f"{stem}.csv", f"{stem}__code.csv"):
        out[name].append({"file": file, "target": r["target"], "task": task, "rows": r["rows"], "cols": r["cols"]})
for name, s in out.items():
    json.dump(s, open(f"{name}/suite.json", "w"), indent=1)
    print(name, len(s) // 2, [(e["file"][:-4], e["target"], e["task"][:3], e["cols"]) for e in s[::2]])
