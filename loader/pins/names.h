#pragma once
// The names of the maps the BPF object pins by name (LIBBPF_PIN_BY_NAME, at PIN_ROOT/NAME; see
// state::pinned_map_path): the one place the loader spells them. Each is the map's identifier in
// bpf/lib/*.h; the bpf test PinNames.* checks this list against the compiled object both ways.
#include <string_view>

namespace ipsnat::pins {

inline constexpr char kStats[] = "ipsnat_stats";   // maps/stats.h
inline constexpr char kCt[] = "ipsnat_ct";         // maps/ct.h
inline constexpr char kFrag[] = "ipsnat_frag";     // maps/ct.h
inline constexpr char kConfig[] = "ipsnat_cfg";    // maps/config.h
inline constexpr char kDevices[] = "ipsnat_dev";   // maps/config.h
inline constexpr char kDeviceGen[] = "ipsnat_dev_gen";
inline constexpr char kForwards[] = "ipsnat_fwd";  // maps/fwd.h
inline constexpr char kForwardCount[] = "ipsnat_fwd_cnt";
inline constexpr char kInside[] = "ipsnat_inside"; // maps/inside.h
inline constexpr char kSpdActive[] = "spd_active"; // maps/spd.h
inline constexpr char kSpdDst[] = "spd_dst";
inline constexpr char kSpdSrc[] = "spd_src";
inline constexpr char kSpdLists[] = "spd_lists";
inline constexpr char kSpdHealth[] = "spd_health";
inline constexpr char kSpdCover6[] = "spd_cover6";     // maps/cover6.h
inline constexpr char kSpoofSet[] = "xdp_spoof4";      // maps/spoof.h
inline constexpr char kSpoofActive[] = "xdp_spoof_act";
inline constexpr char kNpt6[] = "ipsnat_npt6";         // maps/npt6.h
inline constexpr char kCt6[] = "ipsnat_ct6";           // maps/ct6.h
inline constexpr char kFrag6[] = "ipsnat_frag6";       // maps/frag6.h

inline constexpr std::string_view kPinnedMaps[] = {
    kStats,     kCt,     kFrag,      kConfig,    kDevices,   kDeviceGen, kForwards,  kForwardCount, kInside,      kSpdActive,
    kSpdDst,    kSpdSrc, kSpdLists,  kSpdHealth, kSpdCover6, kSpoofSet,  kSpoofActive, kNpt6, kCt6, kFrag6};

}  // namespace ipsnat::pins
