# The training cases of the GPU lane's trainer checks (backends.sh, gpu_model.sh): every scheme,
# per-tensor buckets and adaptive K. Sourced; each case is a list of signvote-train flags.
# shellcheck disable=SC2034 # used by the scripts that source this file
cases=("--scheme s3gd_mv" "--scheme s3gd_mv --rho 0.5 --density 0.3"
       "--scheme signsgd_mv" "--scheme signsgd_mv --momentum 0.9" "--scheme dense --lr 0.1"
       "--scheme ef_sign" "--scheme topk_ef --momentum 0.9 --density 0.05"
       "--scheme dgs --momentum 0.5 --down-density 0.05" "--scheme liec --period 3"
       "--scheme s3gd_mv --buckets tensor" "--scheme dgs --momentum 0.5 --buckets tensor"
       "--scheme s3gd_mv --adaptive-k --kmin 80 --kwindow 10 --kbudget 7960"
       "--scheme topk_ef --momentum 0.9 --density 0.05 --adaptive-k --kmin 100")
