// Fixed-width loads from on-disk structures: qcow2 is big-endian, MBR, GPT
// and ext2/3/4 are little-endian. Byte by byte, so unaligned input and any
// host byte order are fine.
#pragma once

#include <cstddef>
#include <cstdint>

namespace affinity::profile {

template <typename T>
T LoadLe(const uint8_t* p) {
  T v = 0;
  for (size_t i = sizeof(T); i > 0; --i) v = static_cast<T>((v << 8) | p[i - 1]);
  return v;
}

template <typename T>
T LoadBe(const uint8_t* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>((v << 8) | p[i]);
  return v;
}

}  // namespace affinity::profile
