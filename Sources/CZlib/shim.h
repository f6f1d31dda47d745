// zlib: CRC-32 for the stream's checksums and gzip inflation with trailer checks (Debian: zlib1g-dev).
#include <zlib.h>
