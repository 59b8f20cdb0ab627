#!/usr/bin/env python3
"""gen-long-history.py N OUT - a synthetic valid history of N records for checker memory
measurements (docs/checker.md): sessions open, check and close, 100 at a time, round robin,
checked with --spec tests/data/spec_session.json."""
import sys
N=int(sys.argv[1]); out=open(sys.argv[2],'w')
out.write('{"type":"meta","format":"pgfault-history","version":1,"seed":1,"mode":"sim","tool":"pgfault 0.1.0"}\n')
steps=[('invoke','open',None,None,1),('transition','open','NEW','CONNECTING',0),('transition','open','CONNECTING','READY',0),('ok','open',None,None,0),
('invoke','check',None,None,1),('transition','check','READY','BUSY',0),('transition','check','BUSY','READY',0),('ok','check',None,None,0),
('invoke','close',None,None,1),('transition','close','READY','CLOSING',0),('transition','close','CLOSING','CLOSED',0),('ok','close',None,None,0)]
slots=[[i+1,0,0] for i in range(100)]; nexts=101; nop=1; k=0
w=out.write
for o in range(N):
    s=slots[k]; t,op,f,to,new=steps[s[1]]
    if new: s[2]=nop; nop+=1
    line='{"seq":%d,"time_ns":%d,"type":"%s","session":%d,"op":"%s","op_id":%d'%(o+1,(o+1)*1000,t,s[0],op,s[2])
    if f: line+=',"from":"%s","to":"%s"'%(f,to)
    w(line+'}\n')
    s[1]+=1
    if s[1]==12: slots[k]=[nexts,0,0]; nexts+=1
    k=(k+1)%100
