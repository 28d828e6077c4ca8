# shellcheck shell=bash
# ike.sh: a real IKE daemon for the lab (source it after scripts/lab/lab.sh). strongSwan's
# charon runs in gw (the homeworker's gateway, initiator, asks for a virtual IP)
# and in cgw (the company gateway, responder, hands out LAB_NAT_IP from a
# one-address pool; with IKE_IPV6=yes also LAB_NAT_IP6 from a second one); IKEv2
# with a pre-shared key. The company side's traffic
# selector is LAB_COMPANY_NET, so charon on gw installs what docs/datapath.md
# ("What strongSwan installs") describes: out LAB_NAT_IP/32 -> LAB_COMPANY_NET,
# in/fwd back, the virtual IP on eth0, and table 220 with a src route.
#
# Each charon has its own strongswan.conf (STRONGSWAN_CONF), vici socket and
# log under $LAB_STATE/ike-ROLE, and a private /run: charon's pidfile is
# compiled in (/var/run/charon.pid), so two instances would refuse each other.
# `ip netns exec` already gives the process its own mount namespace (slave of
# ours), so a tmpfs on /run there is invisible to everyone else.
# lab_down stops the daemons (it kills every process in the lab's namespaces).

[[ -n ${_IKE_SH_LOADED:-} ]] && return 0
_IKE_SH_LOADED=1

IKE_CHARON=${IKE_CHARON:-/usr/lib/ipsec/charon}
IKE_PSK=${IKE_PSK:-ipsnat-lab-psk-0123456789abcdef}
# Only what IKEv2 with PSK and MODP DH needs (Debian ships no openssl/curve25519
# plugin with charon); explicitly, so bypass-lan/resolve never touch the lab.
IKE_PLUGINS="random nonce aes sha1 sha2 hmac kdf gmp kernel-netlink socket-default vici updown"
IKE_PROPOSALS=aes128-sha256-modp2048
IKE_ESP=aes128gcm16
# IKE_ENCAP=yes: both sides force UDP encapsulation (NAT-T: IKE and ESP on UDP 4500) as if a NAT
# were between them, the homeworker's usual case.
IKE_ENCAP=${IKE_ENCAP:-no}
# IKE_IPV6=yes: dual stack inside the (IPv4) tunnel: gw asks for a virtual IPv6 address too
# (`vips = 0.0.0.0, ::`), cgw hands out LAB_NAT_IP6 from a second one-address pool, and both
# sides' company traffic selector adds LAB_COMPANY6_NET (the lab needs lab_ipv6_up and
# lab_ipv6_company_up for traffic to use it).
IKE_IPV6=${IKE_IPV6:-no}

# _ike_v6 TEXT: TEXT when IKE_IPV6=yes, nothing otherwise (for the configs below).
_ike_v6() { [[ $IKE_IPV6 != yes ]] || printf '%s' "$1"; }

# ike_supported: 0 if charon and swanctl are installed.
ike_supported() { [[ -x $IKE_CHARON ]] && command -v swanctl >/dev/null; }

_ike_dir() { echo "$LAB_STATE/ike-$1"; }
# ike_swanctl ROLE ARGS...: swanctl talking to ROLE's charon.
ike_swanctl() {
  local d; d=$(_ike_dir "$1"); shift
  STRONGSWAN_CONF=$d/strongswan.conf swanctl "$@" --uri "unix://$d/charon.vici"
}

# _ike_start ROLE SWANCTL_CONF_TEXT: write the config, start charon, wait for its
# vici socket (<= 30 s), load connections, pool and secret.
_ike_start() {
  local role=$1 d i
  d=$(_ike_dir "$role")
  mkdir -p "$d"
  cat >"$d/strongswan.conf" <<EOF
charon {
  load = $IKE_PLUGINS
  filelog {
    charon {
      path = $d/charon.log
      default = 1
      time_format = %T
    }
  }
  plugins {
    vici {
      socket = unix://$d/charon.vici
    }
  }
}
EOF
  printf '%s\n' "$2" >"$d/swanctl.conf"
  # shellcheck disable=SC2016  # expanded by the inner shell
  lab_exec "$role" env STRONGSWAN_CONF="$d/strongswan.conf" \
    sh -c 'mount -t tmpfs ike-run /run && exec "$0"' "$IKE_CHARON" \
    </dev/null >"$d/stderr" 2>&1 &
  disown $!
  for ((i = 0; i < 300; i++)); do
    [[ -S $d/charon.vici ]] && break
    _lab_sleep 0.1
  done
  [[ -S $d/charon.vici ]] || { echo "ike: charon in $role did not start: $(_lab_first_line "$d/stderr")" >&2; return 1; }
  ike_swanctl "$role" --load-all --noprompt --file "$d/swanctl.conf" >"$d/load.out" 2>&1 ||
    { echo "ike: swanctl --load-all in $role failed:" >&2; cat "$d/load.out" >&2; return 1; }
}

# _ike_gw_conf: gw's swanctl.conf; IKE_GW_REQID, when set, is the CHILD_SA's reqid (charon
# allocates one otherwise).
_ike_gw_conf() {
  echo "connections {
  company {
    version = 2
    local_addrs = $LAB_GW_WAN_IP
    remote_addrs = $LAB_CGW_WAN_IP
    proposals = $IKE_PROPOSALS
    encap = $IKE_ENCAP
    vips = 0.0.0.0$(_ike_v6 ", ::")
    local {
      auth = psk
      id = gw.lab
    }
    remote {
      auth = psk
      id = cgw.lab
    }
    children {
      company {
        remote_ts = $LAB_COMPANY_NET$(_ike_v6 ", $LAB_COMPANY6_NET")${IKE_GW_REQID:+
        reqid = $IKE_GW_REQID}
        esp_proposals = $IKE_ESP
        mode = tunnel
      }
    }
  }
}
secrets {
  ike-lab {
    id-cgw = cgw.lab
    id-gw = gw.lab
    secret = \"$IKE_PSK\"
  }
}"
}

# ike_up: both daemons, then gw initiates; returns when the CHILD_SA is installed
# on both sides (the responder installs before it answers IKE_AUTH).
ike_up() {
  _ike_start cgw "connections {
  homeworker {
    version = 2
    local_addrs = $LAB_CGW_WAN_IP
    remote_addrs = $LAB_GW_WAN_IP
    proposals = $IKE_PROPOSALS
    encap = $IKE_ENCAP
    pools = homeworker$(_ike_v6 ", homeworker6")
    local {
      auth = psk
      id = cgw.lab
    }
    remote {
      auth = psk
      id = gw.lab
    }
    children {
      company {
        local_ts = $LAB_COMPANY_NET$(_ike_v6 ", $LAB_COMPANY6_NET")
        esp_proposals = $IKE_ESP
        mode = tunnel
      }
    }
  }
}
pools {
  homeworker {
    addrs = $LAB_NAT_IP-$LAB_NAT_IP
  }$(_ike_v6 "
  homeworker6 {
    addrs = $LAB_NAT_IP6-$LAB_NAT_IP6
  }")
}
secrets {
  ike-lab {
    id-cgw = cgw.lab
    id-gw = gw.lab
    secret = \"$IKE_PSK\"
  }
}" || return 1
  _ike_start gw "$(_ike_gw_conf)" || return 1
  local d; d=$(_ike_dir gw)
  if ! ike_swanctl gw --initiate --child company --timeout 60 >"$d/initiate.out" 2>&1; then
    echo "ike: gw could not establish the tunnel:" >&2
    tail -5 "$d/initiate.out" >&2
    return 1
  fi
}

# ike_reestablish REQID: gw ends the IKE_SA (and its CHILD_SA) and initiates it again, as after
# a peer's restart or a dead-peer timeout, the new CHILD_SA with reqid REQID. (A daemon that
# reallocates gives it whatever reqid is free then; charon here would reuse the one just
# released, so the lab sets it: the kernel's state is the same either way.)
ike_reestablish() {
  local d; d=$(_ike_dir gw)
  ike_swanctl gw --terminate --ike company --timeout 30 >"$d/terminate.out" 2>&1 ||
    { echo "ike: gw could not terminate the IKE_SA:" >&2; tail -5 "$d/terminate.out" >&2; return 1; }
  IKE_GW_REQID=$1 _ike_gw_conf >"$d/swanctl.conf"
  ike_swanctl gw --load-conns --file "$d/swanctl.conf" >"$d/load.out" 2>&1 ||
    { echo "ike: gw could not reload its connection:" >&2; cat "$d/load.out" >&2; return 1; }
  ike_swanctl gw --initiate --child company --timeout 60 >"$d/initiate.out" 2>&1 ||
    { echo "ike: gw could not establish the tunnel again:" >&2; tail -5 "$d/initiate.out" >&2; return 1; }
}

# ike_gw_reqid: the reqid of gw's SA towards cgw (empty if none).
ike_gw_reqid() {
  _lab_ip gw xfrm state list src "$LAB_GW_WAN_IP" dst "$LAB_CGW_WAN_IP" |
    sed -n 's/.* reqid \([0-9]*\) .*/\1/p' | head -1
}

# ike_diag: the daemons' logs' tails (for failure messages).
ike_diag() {
  local r
  for r in gw cgw; do
    echo "--- charon $r"
    tail -15 "$(_ike_dir "$r")/charon.log" 2>/dev/null
    cat "$(_ike_dir "$r")/stderr" 2>/dev/null
  done
}
