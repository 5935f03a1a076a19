# Warnings for proxyloss's own targets (never for LibTorch's headers, which
# are included as system headers through the imported torch target).
function(proxyloss_enable_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  endif()
endfunction()
