// libjpeg-turbo's TurboJPEG API, which reports errors by return value (Debian: libturbojpeg0-dev).
#include <turbojpeg.h>
