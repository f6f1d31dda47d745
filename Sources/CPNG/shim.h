// libpng's simplified API, which reports errors by return value, not longjmp (Debian: libpng-dev).
#include <png.h>
