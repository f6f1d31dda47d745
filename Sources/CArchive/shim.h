// libarchive's reader API (Debian: libarchive-dev).
#include <archive.h>
#include <archive_entry.h>
