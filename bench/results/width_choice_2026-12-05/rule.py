import json,sys,statistics as st,collections
files=sys.argv[1:]
rows=[]
for f in files:
    try: rows+=json.load(open(f))['rows']
    except Exception as e: print(f,e)
tables=list(dict.fromkeys(r['table'] for r in rows))
def pick(r,m,w):
    return r[w] if r[f'{w}_val_loss'] < r['d_val_loss']*(1-m) else r['d']
for w in ['h64','h128']:
    print('==',w)
    for m in [0,0.01,0.02,0.03,0.05]:
        ch=[];per={}
        for t in tables:
            rs=[r for r in rows if r['table']==t and w in r]
            if not rs: continue
            delta=st.mean(pick(r,m,w)-r['d'] for r in rs); per[t]=delta; ch.append(delta)
        up=sum(v>0.0005 for v in ch); dn=sum(v<-0.0005 for v in ch)
        print(f'm={m}: tables {len(ch)} up {up} down {dn} mean {st.mean(ch):+.4f}  worst', sorted(per.items(),key=lambda x:x[1])[:3], 'best', sorted(per.items(),key=lambda x:-x[1])[:3])
    fixed=[st.mean(r[w]-r['d'] for r in rows if r['table']==t) for t in tables]
    print('always', w, 'mean', round(st.mean(fixed),4), 'up', sum(v>0.0005 for v in fixed), 'down', sum(v<-0.0005 for v in fixed))
