if(AFFINITY_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
elseif(AFFINITY_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  # GCC warns that TSan cannot model atomic_thread_fence, which Boost.Asio's
  # headers use; our code uses none. Keep the warning from failing -Werror.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-tsan)
  endif()
  add_link_options(-fsanitize=thread)
elseif(NOT AFFINITY_SANITIZE STREQUAL "")
  message(FATAL_ERROR "AFFINITY_SANITIZE must be address, thread or empty")
endif()
