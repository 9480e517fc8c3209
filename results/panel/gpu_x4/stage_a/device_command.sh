# One GPU call: fine-tune the x4 kit reference at the paper's batch (16 x 144^2) for as many steps
# as fit, measured by a short probe. Writes what comes back under $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1 IRN_DATA=/tmp/data
T0=$(date +%s); LIMIT=${LIMIT:-555}
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/log.txt; }
log "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader) $(python3 -c "import torch; print('torch', torch.__version__)")"
mkdir -p models/kit_reference_x4
xz -dc .gpu/IRN_x4.pth.xz > models/kit_reference_x4/IRN_x4.pth
echo "64ae9fe96b8d18c6ca8f6bd8995a948f13a23b6adeb038b671f5cda967d4b46d  models/kit_reference_x4/IRN_x4.pth" | sha256sum -c >> $OUT/log.txt || { log "x4 weights corrupt"; exit 1; }
python3 .gpu/unpack.py >> $OUT/log.txt 2>&1 || { log "unpack failed"; exit 1; }
log "data ready"
COMMON="scale=4 init_from=models/kit_reference_x4/IRN_x4.pth patch_size=144 batch_size=16 device=cuda amp=off progress=false lr=0.0002 warmup_iterations=100 ema_decay=0.999 log_every=25"
probe() { python3 -m irnlib.train --profile quick --fresh $COMMON num_workers=$NW iterations=60 lr_milestones=1000 val_every=1000 checkpoint_every=1000 run_name=probe >> $OUT/log.txt 2>&1; }
NW=10; probe || { log "probe with workers failed"; NW=0; probe; } || { log "probe failed"; tail -30 $OUT/log.txt; exit 1; }
SPI=$(python3 -c "import pandas as pd; d=pd.read_csv('results/runs/probe/train_log.csv'); print(d[d.iteration>30].s_per_it.median())")
LEFT=$(( LIMIT - ($(date +%s) - T0) ))
N=$(python3 -c "print(int(max(200, ($LEFT - 45) / $SPI * 0.9) // 100 * 100))")
log "probe: $SPI s/it; $LEFT s left -> $N iterations"
M="$((N/2)),$((N*3/4)),$((N*9/10))"
timeout $(( LIMIT + 25 - ($(date +%s) - T0) )) python3 -m irnlib.train --profile quick $COMMON num_workers=$NW iterations=$N lr_milestones=$M val_every=$((N/4)) checkpoint_every=250 run_name=gpu_x4 >> $OUT/log.txt 2>&1
log "train exit $?"
R=results/runs/gpu_x4
cp $R/config.json $R/provenance.json $R/val_log.csv $OUT/ 2>/dev/null
if [ -f $R/IRN_x4.pth ]; then split -b 15000000 $R/IRN_x4.pth $OUT/IRN_x4.pth.part-; cp $R/train_log.csv $OUT/; sha256sum $R/IRN_x4.pth >> $OUT/log.txt
else split -b 15000000 $R/checkpoints/last.pt $OUT/last.pt.part-; log "no export: last.pt sent"; fi
tail -5 $R/val_log.csv >> $OUT/log.txt; log done
