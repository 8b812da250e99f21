# All from Debian packages; scripts/install-deps installs them.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(CURL REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(GTest REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)
pkg_check_modules(FUSE3 REQUIRED IMPORTED_TARGET fuse3)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
find_path(ROARING_INCLUDE_DIR roaring/roaring.hh REQUIRED)
find_library(ROARING_LIBRARY roaring REQUIRED)
add_library(roaring::roaring UNKNOWN IMPORTED)
set_target_properties(roaring::roaring PROPERTIES
  IMPORTED_LOCATION "${ROARING_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${ROARING_INCLUDE_DIR}")
# The guest inspector (profile/ext_inspector) reads ext2/3/4 with e2fsprogs' library.
pkg_check_modules(EXT2FS REQUIRED IMPORTED_TARGET ext2fs com_err)
# qcow2 compressed clusters (deflate) and GPT CRC32 in the guest inspector.
find_package(ZLIB REQUIRED)
