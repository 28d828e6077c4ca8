// The mirror opens the SPD maps from their pins (the daemon's path): a pinned map of another
// layout, of another recorded schema, or with none recorded is refused with a message naming the
// map and the way out — never written into. (Replacement by `ipsnat attach`: t_attach_pins.sh.)
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "maps/spd.h"
#include "mirror/mirror.h"
#include "pins/pin_store.h"
#include "util/error.h"

namespace ipsnat::test {

using namespace ipsnat::spd;
using namespace ipsnat::mirror;

namespace {

class PinRoot {
 public:
  PinRoot() : path_("/sys/fs/bpf/ipsnat-test-spdpins-" + std::to_string(getpid())) {
    std::filesystem::remove_all(path_);
    if (mkdir(path_.c_str(), 0700) != 0) throw std::runtime_error("cannot create " + path_);
  }
  ~PinRoot() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

  void pin(const char* name, bpf_map_type type, uint32_t key, uint32_t value, uint32_t flags = 0) const {
    std::string p = path_ + "/" + name;
    unlink(p.c_str());
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
    int fd = bpf_map_create(type, name, key, value, type == BPF_MAP_TYPE_ARRAY ? 1 : 16, &opts);
    if (fd < 0 || bpf_obj_pin(fd, p.c_str()) != 0) throw std::runtime_error(std::string("cannot pin ") + name);
    close(fd);
  }
  void pin_current_schema() const {
    pin("spd_active", BPF_MAP_TYPE_ARRAY, 4, sizeof(spd_active));
    pin("spd_dst", BPF_MAP_TYPE_LPM_TRIE, sizeof(spd_dst_key), sizeof(spd_cell), BPF_F_NO_PREALLOC);
    pin("spd_src", BPF_MAP_TYPE_LPM_TRIE, sizeof(spd_src_key), sizeof(uint32_t), BPF_F_NO_PREALLOC);
    pin("spd_lists", BPF_MAP_TYPE_HASH, sizeof(spd_list_key), sizeof(spd_list), BPF_F_NO_PREALLOC);
    pins::PinStore store(path_);
    for (const char* n : {"spd_active", "spd_dst", "spd_src", "spd_lists"}) store.record_schema(n, IPSNAT_SPD_SCHEMA);
  }

 private:
  std::string path_;
};

std::string refusal(const std::string& root) {
  try {
    SpdMapFds f = SpdMapFds::from_pins(root);
    f.close_all();
  } catch (const UserError& e) {
    return std::string(e.what()) + " (" + e.hint() + ")";
  }
  return {};
}

}  // namespace

TEST(SpdPins, CompatiblePinsAreOpened) {
  PinRoot root;
  root.pin_current_schema();
  EXPECT_EQ("", refusal(root.path()));
  SpdMapFds f = SpdMapFds::from_pins(root.path());
  EXPECT_NO_THROW(SpdMapWriter{f});
  f.close_all();
}

TEST(SpdPins, AnOlderRecordedSchemaIsRefused) {
  PinRoot root;
  root.pin_current_schema();
  pins::PinStore(root.path()).record_schema("spd_dst", IPSNAT_SPD_SCHEMA - 1);
  std::string msg = refusal(root.path());
  EXPECT_NE(std::string::npos, msg.find(root.path() + "/spd_dst has SPD schema " + std::to_string(IPSNAT_SPD_SCHEMA - 1)))
      << msg;
  EXPECT_NE(std::string::npos, msg.find("attach again")) << msg;
}

TEST(SpdPins, AMapWithoutRecordedSchemaIsRefused) {
  PinRoot root;
  root.pin_current_schema();
  unlink((root.path() + "/" + pins::PinStore::kMetaMap).c_str());
  std::string msg = refusal(root.path());
  EXPECT_NE(std::string::npos, msg.find("spd_active has no recorded schema")) << msg;
}

TEST(SpdPins, AnotherLayoutIsRefused) {
  PinRoot root;
  root.pin_current_schema();
  // What an older build might have pinned: 6-candidate lists.
  root.pin("spd_lists", BPF_MAP_TYPE_HASH, sizeof(spd_list_key), 8 + 28 * 6, BPF_F_NO_PREALLOC);
  std::string msg = refusal(root.path());
  EXPECT_NE(std::string::npos, msg.find("spd_lists has another layout")) << msg;
}

TEST(SpdPins, AWriterOfAnotherSchemaInSpdActiveIsRefused) {
  PinRoot root;
  root.pin_current_schema();
  SpdMapFds f = SpdMapFds::from_pins(root.path());
  spd_active old{1, IPSNAT_SPD_SCHEMA + 1, 7};
  uint32_t zero = 0;
  ASSERT_EQ(0, bpf_map_update_elem(f.active, &zero, &old, BPF_ANY));
  try {
    SpdMapWriter w(f);
    ADD_FAILURE() << "a writer accepted maps last written with schema " << IPSNAT_SPD_SCHEMA + 1;
  } catch (const UserError& e) {
    EXPECT_NE(std::string::npos, std::string(e.what()).find("schema " + std::to_string(IPSNAT_SPD_SCHEMA + 1)))
        << e.what();
  }
  f.close_all();
}

// The daemon opens the pinned maps again after each failure of its mirror: the descriptors go
// with the last copy (the writer's), or every retry would keep nine more open.
TEST(SpdPins, TheOpenedMapsCloseWithTheLastCopy) {
  PinRoot root;
  root.pin_current_schema();
  std::vector<int> opened;
  {
    SpdMapFds f = SpdMapFds::from_pins(root.path());
    opened = {f.active, f.dst, f.src, f.lists};
    SpdMapWriter writer(f);
    f = SpdMapFds{};
    for (int fd : opened) EXPECT_NE(-1, fcntl(fd, F_GETFD)) << "fd " << fd << " closed while the writer uses it";
  }
  for (int fd : opened) {
    errno = 0;
    EXPECT_EQ(-1, fcntl(fd, F_GETFD)) << "fd " << fd << " left open";
    EXPECT_EQ(EBADF, errno);
  }
}

}  // namespace ipsnat::test
