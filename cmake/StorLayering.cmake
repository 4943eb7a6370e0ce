# The layering check (cmake/check_layering.py): which folder may include which. It runs on every
# build as the `layering_check` target, so a layering violation fails `cmake --build`, and as
# the ctest entries layering_check (this tree) and layering_check_rejects (the check refuses
# small trees with one bad include each: tests/layering).
find_package(Python3 COMPONENTS Interpreter)
if(NOT Python3_Interpreter_FOUND)
  message(WARNING "stor: python3 not found; the layering check does not run")
  return()
endif()
set(STOR_LAYERING_CHECK ${CMAKE_CURRENT_LIST_DIR}/check_layering.py)
add_custom_target(layering_check ALL
  COMMAND ${Python3_EXECUTABLE} ${STOR_LAYERING_CHECK} --root ${PROJECT_SOURCE_DIR}
  COMMENT "Checking which layers include which (cmake/check_layering.py)"
  VERBATIM)
