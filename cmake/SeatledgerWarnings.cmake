# Warnings for the project's own targets only (third-party headers are system
# includes and stay quiet).
function(seatledger_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic
                         -Wno-missing-field-initializers)
endfunction()
