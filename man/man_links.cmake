# Install-time script (install(CODE) in man/CMakeLists.txt): the MLINKS of kcont's pages.
#
# For every page PAGE.N in KCONT_MAN_SOURCE_DIR, every name on a `.Nm` line of its NAME
# section other than PAGE itself becomes a symbolic link NAME.N -> PAGE.N in the installed
# manN directory. The links are made in KCONT_MAN_STAGE_DIR and installed with file(INSTALL),
# which keeps them as links, prints them and records them in install_manifest.txt.
# In: KCONT_MAN_SOURCE_DIR, KCONT_MAN_STAGE_DIR, KCONT_MAN_MANDIR (relative to the prefix, or
# absolute); CMAKE_INSTALL_PREFIX and DESTDIR as cmake --install sets them.
if(IS_ABSOLUTE "${KCONT_MAN_MANDIR}")
  set(kcont_man_dest "$ENV{DESTDIR}${KCONT_MAN_MANDIR}")
else()
  set(kcont_man_dest "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/${KCONT_MAN_MANDIR}")
endif()
file(REMOVE_RECURSE "${KCONT_MAN_STAGE_DIR}")
file(GLOB kcont_man_pages "${KCONT_MAN_SOURCE_DIR}/*.[1-9]")
foreach(page IN LISTS kcont_man_pages)
  get_filename_component(file "${page}" NAME)
  string(REGEX MATCH "[1-9]$" sec "${file}")
  string(REGEX REPLACE "\\.[1-9]$" "" base "${file}")
  # Only the .Sh and .Nm lines: the NAME section is the first, the rest is not needed.
  file(STRINGS "${page}" lines REGEX "^\\.(Sh|Nm)[ \t]")
  set(in_name FALSE)
  set(links "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^\\.Sh[ \t]+NAME")
      set(in_name TRUE)
    elseif(line MATCHES "^\\.Sh")
      break()
    elseif(in_name AND line MATCHES "^\\.Nm[ \t]+([A-Za-z0-9_.-]+)")
      if(NOT CMAKE_MATCH_1 STREQUAL base)
        set(link "${KCONT_MAN_STAGE_DIR}/man${sec}/${CMAKE_MATCH_1}.${sec}")
        file(MAKE_DIRECTORY "${KCONT_MAN_STAGE_DIR}/man${sec}")
        file(CREATE_LINK "${file}" "${link}" SYMBOLIC)
        list(APPEND links "${link}")
      endif()
    endif()
  endforeach()
  if(links)
    file(INSTALL ${links} DESTINATION "${kcont_man_dest}/man${sec}")
  endif()
endforeach()
