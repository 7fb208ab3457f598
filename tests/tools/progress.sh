# shellcheck shell=bash
# progress_ticker NAME: until progress_stop (or the script's end), prints
# "NAME [Ns] ... still: <last step>" once a minute, so a long offline build
# phase (Kubernetes is ten minutes of `go build` with no output) shows it is
# alive. progress_step MESSAGE records the step it repeats.
progress_ticker() {
  progress_name=$1
  progress_t0=$(date +%s)
  progress_file=$(mktemp)
  local parent=$$
  ( while sleep 60 && kill -0 "$parent" 2>/dev/null; do
      echo "$progress_name [$(( $(date +%s) - progress_t0 ))s] ... still: $(cat "$progress_file" 2>/dev/null)"
    done ) &
  progress_pid=$!
}
progress_step() { [ -z "${progress_file:-}" ] || echo "$*" >"$progress_file"; }
progress_stop() {
  [ -z "${progress_pid:-}" ] || kill "$progress_pid" 2>/dev/null || true
  [ -z "${progress_file:-}" ] || rm -f "$progress_file"
  progress_pid='' progress_file=''
}
