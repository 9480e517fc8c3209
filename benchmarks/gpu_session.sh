#!/usr/bin/env bash
# The kit's GPU session in one command, for a lent GPU with a time limit:
#   1. the machine (nvidia-smi, torch) and the training-step benchmark on the GPU, with the
#      autocast check (benchmarks/train_step.py --device cuda --precision);
#   2. the kit reference trainings, x2 and x4 side by side on the one GPU: the quick recipe at
#      the paper's batch (16 × 144²), as many steps as the measured step time fits in the budget
#      (lr halved at 68 %, 86 % and 95 % of them, as the quick recipe does).
# Every run folder is packed into OUT (without its checkpoints) for python -m irnlib.experiments.modelcard.
#
#   bash benchmarks/gpu_session.sh OUT DATA_ROOT TRAIN_SET [TRAIN_SECONDS [field=value ...]]
#   e.g. bash benchmarks/gpu_session.sh /tmp/out ../shared/datasets T91+BSD200 300
# DATA_ROOT may be a folder packed by benchmarks/gpu_data.py; it is unpacked (pixels checked) first.
# Further field=value arguments go to both trainings ({s} stands for the scale), e.g. a second
# stage from the reference models: init_from=models/kit_reference_x{s}/IRN_x{s}.pth lr=1e-4.
# End a stage quiet (results/panel/quiet_x4/README.md: the x4 smooth-image floor follows the noise
# of the weights): ema_decay=0.999 and a decayed lr, as the x4 stages 7-8 did; at x4 keep the 'grain'
# patches (synthetic_kinds=flat,gradient,strokes,highlights,grain, section 8 there) or coffee's LR drifts,
# and train them on the LR only (lr_only_kinds=grain: nearly the same hold on coffee x1 for less floor, section 9 there).
# Weighing the flat and gradient patches' L_back x16 (heavy_back_kinds=flat,gradient heavy_back_weight=16, the x4
# stage 9's recipe) lifts the floor with coffee x1 held and the latent's sensitivity at stage 8's (sections 10-11),
# but it pushes the colour wheel's blue LR past 1.1 after a few thousand CPU steps; lambda_range=20000 (stage 10)
# holds it off for longer (section 12): check the panel's LR range (floor_hold prints it), and measure
# python -m irnlib.experiments.latent_sensitivity (IRN_DATA set) on any stage before it is published; the hinge
# for L_distr (distr_loss=unit_hinge) lifts the floor further but loosens the latent (28 of 48 crops against 15).
# Session 22 on the CPU (section 13): one 144-pixel patch a step instead of four of 48 holds coffee x2 and lifts the
# floor a little but loosens the latent (22 of 48 moved crops); lambda_stress=4 brings it back (14-16) for 0.3-0.6 dB of floor.
# At the paper's batch start from stage 10's recipe and try lambda_stress between 1 and 4.
# Session 23 (results/panel/grid_x4/README.md): the floor is the upscaler's bias over draws, a third of it one 4x4
# pattern; measure it before and after with python -m irnlib.experiments.grid_pattern (lambda_grid does not lift the floor).
# BENCH=0 skips the benchmark; the step times then come from STEP_X2 and STEP_X4 (seconds),
# and SHARE is how much slower each training runs beside the other (1.0 measured on an H200).
set -u
out=${1:?OUT folder}; data=${2:?data root}; train_set=${3:?training set}; budget=${4:-300}; shift $(( $# < 4 ? $# : 4 ))
share=${SHARE:-1.6}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 IRN_CACHE=${IRN_CACHE:-/tmp/irn-cache}
python=${PYTHON:-python3}
device=${DEVICE:-cuda} batch=${BATCH:-16} patch=${PATCH:-144}  # DEVICE=cpu BATCH=2 PATCH=32: a dry run
mkdir -p "$out"
log=$out/session.log
check="import torch, irnlib.train; from irnlib.runtime.provenance import device_name
print('torch', torch.__version__, device_name('$device'))"
{ date -u; nvidia-smi; "$python" -c "$check"; } >"$log" 2>&1 \
  || { cat "$log"; echo "the device or irnlib is not usable here"; exit 1; }

# a folder packed by benchmarks/gpu_data.py (lossless WebP: all of T91 + BSD200 fits the transfer)
if [ -f "$data/pixels.json" ]; then
  "$python" benchmarks/gpu_data.py unpack "$data" /tmp/irn-data >>"$log" 2>&1 || { tail -3 "$log"; exit 1; }
  data=/tmp/irn-data
fi

touch "$out/bench.md"
[ "$device" = cpu ] || [ "${BENCH:-1}" = 0 ] \
  || "$python" benchmarks/train_step.py --device "$device" --rows x2-b16-p144 x4-b16-p144 --repeats 10 --precision \
     2>>"$log" | tee "$out/bench.md"

# seconds per step of the fast mode (fp32, channels_last, cuDNN tuned); else STEP_X2/STEP_X4, else 0.1 s
step_s() {
  awk -F'|' -v row="$1" '$2 ~ row && $3 ~ /^ fast $/ {split($4, a, " "); print a[1]}' "$out/bench.md" | head -1
}
runs=()
for scale in 2 4; do
  fallback=STEP_X$scale; s=$(step_s "x$scale-b16-p144"); s=${s:-${!fallback:-0.1}}
  its=$("$python" -c "print(max(200, int($budget / ($s * $share)) // 50 * 50))")
  val_every=$("$python" -c "print(max(50, $its // 4 // 50 * 50))")
  milestones=$("$python" -c "n=$its; print(','.join(str(int(n * f)) for f in (0.68, 0.86, 0.95)))")
  extra=("${@//\{s\}/$scale}")
  echo "x$scale: $s s/step alone -> $its iterations, lr halved at $milestones; ${extra[*]}" | tee -a "$log"
  timeout $((budget + ${GRACE:-120})) "$python" -m irnlib.train --profile quick scale=$scale device=$device \
    batch_size=$batch patch_size=$patch \
    iterations=$its lr_milestones=$milestones train_set=$train_set data_root="$data" num_workers=6 \
    val_every=$val_every checkpoint_every=250 keep_every=0 log_every=50 progress=False \
    runs_dir=/tmp/irn-runs run_name=gpu_x$scale "${extra[@]}" >"$out/train_x$scale.log" 2>&1 &
  runs+=($!)
done
for pid in "${runs[@]}"; do wait "$pid" || echo "a training exited with status $?" | tee -a "$log"; done
for scale in 2 4; do
  tar -C /tmp/irn-runs -cf "/tmp/gpu_x$scale.tar" --exclude checkpoints --exclude .train.lock "gpu_x$scale" \
    && split -b 15M -d "/tmp/gpu_x$scale.tar" "$out/gpu_x$scale.tar.part"
  tail -n 3 "/tmp/irn-runs/gpu_x$scale/val_log.csv" >>"$log" 2>/dev/null
done
date -u >>"$log"
