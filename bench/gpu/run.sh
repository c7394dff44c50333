#!/bin/bash
# On a GPU machine, from the repository root with .gpu/ (bench/gpu/prepare.py) beside it: the distillation
# bench with the teacher on the GPU, ASAP-SAS 1/2/5/6 and SciEntsBank in five processes side by side.
# Writes the reports and a tar of the logs to $OUT (default: var/gpu).  LIMIT: seconds per process.
set -u
OUT=${OUT:-var/gpu}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=3 MKL_NUM_THREADS=3 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import sys,torch,transformers,onnxruntime,numpy,sklearn,onnx;print(sys.version.split()[0],torch.__version__,transformers.__version__,onnxruntime.__version__,numpy.__version__,sklearn.__version__,onnx.__version__, torch.cuda.is_available())"
  lscpu | grep -E "Model name|^CPU\(s\)"; } > $OUT/env.txt 2>&1
cat $OUT/env.txt
mkdir -p /tmp/minilm /tmp/res
cp .gpu/minilm/* /tmp/minilm/ && rm /tmp/minilm/model.fp16.safetensors
python3 -c "
from safetensors.torch import load_file, save_file
t = load_file('.gpu/minilm/model.fp16.safetensors')
save_file({k: v.float().contiguous() for k, v in t.items()}, '/tmp/minilm/model.safetensors')" || exit 1
tar xzf .gpu/data.tgz -C /tmp || exit 1
export KDGRADE_DATASETS=/tmp/data
LIMIT=${LIMIT:-530}
for i in 1 2 5 6; do
  timeout $LIMIT python3 bench/distill_bench.py asap --items $i --teacher /tmp/minilm --threads 3 \
    --out /tmp/out/$i --report /tmp/res/asap_$i.json > /tmp/res/asap_$i.log 2>&1 &
done
timeout $LIMIT python3 bench/distill_bench.py scientsbank --teacher /tmp/minilm --threads 3 \
  --out /tmp/out/sb --report /tmp/res/scientsbank.json > /tmp/res/scientsbank.log 2>&1 &
while sleep 30; do
  n=$(jobs -r | wc -l); echo "$(date -u +%T) running $n"; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  for f in /tmp/res/*.log; do echo "$f: $(tail -c 300 $f | tr '\r' '\n' | tail -1)"; done
  [ "$n" -eq 0 ] && break
done
wait
cp /tmp/res/*.json $OUT/ 2>/dev/null
tar czf $OUT/logs.tgz -C /tmp/res $(cd /tmp/res && ls *.log)
ls -la $OUT
