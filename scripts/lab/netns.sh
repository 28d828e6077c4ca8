# shellcheck shell=bash
# netns.sh: the lab library's shell primitives — namespaces named under one prefix, commands run
# inside them, topology files (*.topo, format in scripts/lab/README.md) built with a few `ip -batch`
# runs, and one cleanup (lab_down) that removes the namespaces and every process inside them.
# Source it; it defines functions and runs nothing. scripts/lab/netns.py is the same for Python
# and reads the same topology files.
#
# Every namespace is "$LAB_PREFIX-<role>" (LAB_PREFIX is the caller's: scripts/lab/lab.sh, the
# netns tests' tests/netns/lib.sh), so parallel runs never collide and lab_down removes exactly
# the caller's. Process starts are the expensive part in the TCG VM (an exec of a dynamically
# linked tool costs ~0.2-0.4 s of emulated CPU), so the functions here batch and use builtins.

[[ -n ${_LAB_NETNS_SH_LOADED:-} ]] && return 0
_LAB_NETNS_SH_LOADED=1
# shellcheck disable=SC2034 # used by the callers (lab.sh, tests/netns/lib.sh)
LAB_DIR=$(cd "${BASH_SOURCE[0]%/*}" && pwd)   # scripts/lab: the topology files

lab_ns() { echo "$LAB_PREFIX-$1"; }
# lab_in NS command...: run in namespace NS (full name) with nsenter --net, which keeps the
# caller's /sys, so bpffs pins under /sys/fs/bpf resolve (ip netns exec remounts /sys; see
# docs/datapath.md, "Kernel path").
lab_in() { local ns=$1; shift; nsenter --net="/run/netns/$ns" -- "$@"; }
# lab_nsenter ROLE command...: lab_in for namespace ROLE of this prefix.
lab_nsenter() { local ns=$1; shift; lab_in "$LAB_PREFIX-$ns" "$@"; }
# lab_exec ROLE command...: ip netns exec (fine for ip, ping, tcpdump; a private /sys).
lab_exec() { local ns=$1; shift; ip netns exec "$LAB_PREFIX-$ns" "$@"; }
_lab_ip() { local ns=$1; shift; ip -n "$LAB_PREFIX-$ns" "$@"; }
# _lab_batch ROLE: ip commands from stdin, one per line, all inside ROLE's namespace; stops at the
# first failing line and says which.
_lab_batch() { ip -n "$LAB_PREFIX-$1" -batch -; }

# lab_netns NS...: create namespaces (full names) in one `ip -batch`, each with lo up.
lab_netns() {
  local ns
  printf 'netns add %s\n' "$@" | ip -batch - || return 1
  for ns; do ip -n "$ns" link set lo up || return 1; done
}

# lab_topology FILE [ROLE=NS...]: build what the topology FILE describes. A ROLE=NS argument puts
# section [ROLE] into namespace NS (full name); other roles are "$LAB_PREFIX-ROLE". Namespaces that
# do not exist yet are created (lo up). ${NAME} in the file is the caller's variable NAME (an unset
# one is an error), @ROLE the namespace of ROLE. Consecutive ip lines of a section run as one
# `ip -batch`, in file order with the sysctl lines. The locals are _lt_*: the file's ${NAME}
# must see the caller's variables, not this function's.
lab_topology() {
  local _lt_file=$1 _lt_kv _lt_line _lt_role='' _lt_n _lt_i _lt_no=0
  shift
  local -A _lt_ns=() _lt_new=()
  local -a _lt_lines=() _lt_batch=() _lt_add=()
  for _lt_kv; do _lt_ns[${_lt_kv%%=*}]=${_lt_kv#*=}; done
  mapfile -t _lt_lines <"$_lt_file" || return 1
  for _lt_line in "${_lt_lines[@]}"; do         # every role's namespace, before any link names it
    [[ $_lt_line =~ ^\[([A-Za-z0-9_]+)\]$ ]] || continue
    _lt_n=${BASH_REMATCH[1]}
    [[ -n ${_lt_ns[$_lt_n]:-} ]] || _lt_ns[$_lt_n]=$LAB_PREFIX-$_lt_n
    if [[ ! -e /run/netns/${_lt_ns[$_lt_n]} && -z ${_lt_new[${_lt_ns[$_lt_n]}]:-} ]]; then
      _lt_new[${_lt_ns[$_lt_n]}]=1
      _lt_add+=("netns add ${_lt_ns[$_lt_n]}")
    fi
  done
  if ((${#_lt_add[@]})); then printf '%s\n' "${_lt_add[@]}" | ip -batch - || return 1; fi
  for _lt_line in "${_lt_lines[@]}" '[]'; do
    _lt_no=$((_lt_no + 1))
    [[ $_lt_line =~ ^[[:space:]]*(#|$) ]] && continue
    if [[ $_lt_line =~ ^\[([A-Za-z0-9_]*)\]$ || $_lt_line == sysctl\ * ]] && ((${#_lt_batch[@]})); then
      printf '%s\n' "${_lt_batch[@]}" | ip -n "${_lt_ns[$_lt_role]}" -batch - ||
        { echo "lab_topology: $_lt_file, section [$_lt_role] before line $_lt_no failed" >&2; return 1; }
      _lt_batch=()
    fi
    if [[ $_lt_line =~ ^\[([A-Za-z0-9_]*)\]$ ]]; then
      _lt_role=${BASH_REMATCH[1]}
      if [[ -n $_lt_role && -n ${_lt_new[${_lt_ns[$_lt_role]}]:-} ]]; then
        _lt_batch=("link set lo up")                # a namespace made here: lo first
        _lt_new[${_lt_ns[$_lt_role]}]=
      fi
      continue
    fi
    [[ -n $_lt_role ]] || { echo "lab_topology: $_lt_file:$_lt_no: outside a [ROLE] section" >&2; return 1; }
    for ((_lt_i = 0; _lt_i < 64; _lt_i++)); do    # ${NAME} and @ROLE, a bounded number of them
      if [[ $_lt_line =~ \$\{([A-Za-z_][A-Za-z0-9_]*)\} ]]; then
        _lt_n=${BASH_REMATCH[1]}
        [[ -v $_lt_n ]] || { echo "lab_topology: $_lt_file:$_lt_no: \${$_lt_n} is not set" >&2; return 1; }
        _lt_line=${_lt_line//"${BASH_REMATCH[0]}"/${!_lt_n}}
      elif [[ $_lt_line =~ @([A-Za-z0-9_]+) ]]; then
        _lt_n=${BASH_REMATCH[1]}
        [[ -n ${_lt_ns[$_lt_n]:-} ]] || { echo "lab_topology: $_lt_file:$_lt_no: no section [$_lt_n]" >&2; return 1; }
        _lt_line=${_lt_line//"${BASH_REMATCH[0]}"/${_lt_ns[$_lt_n]}}
      else
        break
      fi
    done
    if [[ $_lt_line == sysctl\ * ]]; then
      # shellcheck disable=SC2086 # the keys are words
      lab_in "${_lt_ns[$_lt_role]}" sysctl -qw ${_lt_line#sysctl } || return 1
    else
      _lt_batch+=("$_lt_line")
    fi
  done
}

# --- waiting and cleanup -----------------------------------------------------
# Polling loops use builtins only (read, kill -0, _lab_sleep): under TCG an exec of grep/sleep
# costs more than the wait itself.
_lab_sleep() {
  [[ -n ${_LAB_SLEEP_FD:-} ]] || exec {_LAB_SLEEP_FD}<> <(:)   # a pipe nobody writes
  read -r -t "$1" -u "$_LAB_SLEEP_FD" _ || true
}
_lab_first_line() { local l=; read -r l <"$1" 2>/dev/null; echo "$l"; }

# lab_down: remove every namespace named "$LAB_PREFIX-*", every process running in one, and
# $LAB_STATE (if set: pid files of background processes, captures). Idempotent; safe in traps.
lab_down() {
  local f ino
  local -a pids=() del=()
  local -A ours=()
  if [[ -n ${LAB_STATE:-} ]]; then
    for f in "$LAB_STATE"/*.pid; do     # our captures (also caught below)
      [[ -f $f ]] || continue
      ino=$(_lab_first_line "$f")
      [[ -z $ino ]] || kill "$ino" 2>/dev/null || true
    done
  fi
  # Our namespaces by inode, then every process whose netns is one of them:
  # what `ip netns pids` does, in two processes instead of two per namespace.
  while read -r ino f; do
    ours[$ino]=1
    del+=("netns del ${f##*/}")
  done < <(stat -L -c '%i %n' /run/netns/"$LAB_PREFIX"-* 2>/dev/null || true)
  if ((${#del[@]})); then
    while read -r f ino; do              # "/proc/PID/ns net:[INODE]"
      ino=${ino#net:[} ino=${ino%]} f=${f#/proc/} f=${f%/ns}
      [[ -n $ino && -n ${ours[$ino]:-} ]] && pids+=("$f")
    done < <(find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' \
               -printf '%h %l\n' 2>/dev/null || true)
    if ((${#pids[@]})); then
      kill "${pids[@]}" 2>/dev/null || true
      _lab_sleep 0.2
      kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    printf '%s\n' "${del[@]}" | ip -force -batch - 2>/dev/null || true
  fi
  [[ -z ${LAB_STATE:-} || ! -e $LAB_STATE ]] || rm -rf "$LAB_STATE"
  return 0
}
