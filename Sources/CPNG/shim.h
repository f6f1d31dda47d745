// libpng (Debian: libpng-dev). Reading: its sequential reader, wrapped so that Swift never sees its
// longjmp: each function below sets its own jump buffer, and an error returns 0 with libpng's
// message. Writing (tensor-show --png) keeps the simplified API (png_image_*), which returns its
// errors. Its reader was dropped: it gamma-corrected by the gAMA chunk,
// took 16-bit samples for linear light, and Debian's 1.6.39 build decodes interlaced 16-bit
// images to wrong pixels through it (libpng issue 853). This reader applies no gamma: values
// are the stored ones, as Pillow reads them.
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    png_structp png;
    png_infop info;
    const unsigned char *data;
    size_t size, at;
    png_bytep *rows;
    /// After begin: the decoded image, palettes and transparency expanded (tRNS becomes an
    /// alpha channel, gray below 8 bits becomes 8 bits). channels 1 gray, 2 gray+alpha, 3 RGB,
    /// 4 RGBA; depth 8 or 16, 16-bit samples in native byte order.
    unsigned width, height;
    int channels, depth;
    char message[160];
} cpng_reader;

static void cpng_read_bytes(png_structp png, png_bytep out, size_t n) {
    cpng_reader *r = (cpng_reader *)png_get_io_ptr(png);
    if (n > r->size - r->at) png_error(png, "file ends inside the image (truncated?)");
    memcpy(out, r->data + r->at, n);
    r->at += n;
}

static void cpng_error(png_structp png, png_const_charp message) {
    cpng_reader *r = (cpng_reader *)png_get_error_ptr(png);
    strncpy(r->message, message, sizeof r->message - 1);
    r->message[sizeof r->message - 1] = 0;
    png_longjmp(png, 1);
}

static void cpng_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

/// Reads the header of the PNG in data[0..<size] (which must stay alive until cpng_end) and
/// sets up the transforms; 1 on success, else 0 with r->message.
static inline int cpng_begin(cpng_reader *r, const unsigned char *data, size_t size) {
    memset(r, 0, sizeof *r);
    r->data = data;
    r->size = size;
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, cpng_error, cpng_warning);
    if (!r->png) { strcpy(r->message, "cannot start the PNG decoder"); return 0; }
    r->info = png_create_info_struct(r->png);
    if (!r->info) { strcpy(r->message, "cannot start the PNG decoder"); return 0; }
    if (setjmp(png_jmpbuf(r->png))) return 0;
    png_set_read_fn(r->png, r, cpng_read_bytes);
    // A damaged ancillary chunk is an error, not a warning that drops it: a tRNS that fails
    // its CRC took the alpha channel with it (RGBA read as RGB, status 0). Pillow refuses too.
    png_set_crc_action(r->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_read_info(r->png, r->info);
    png_set_expand(r->png);  // palette to RGB, gray 1/2/4 to 8 bits, tRNS to alpha
    if (png_get_bit_depth(r->png, r->info) == 16) {
        unsigned short one = 1;
        if (*(unsigned char *)&one == 1) png_set_swap(r->png);  // PNG stores big-endian
    }
    png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);
    r->width = png_get_image_width(r->png, r->info);
    r->height = png_get_image_height(r->png, r->info);
    r->channels = png_get_channels(r->png, r->info);
    r->depth = png_get_bit_depth(r->png, r->info);
    if (r->channels < 1 || r->channels > 4 || (r->depth != 8 && r->depth != 16)) {
        strcpy(r->message, "unexpected sample layout after expansion");
        return 0;
    }
    return 1;
}

/// Decodes every row into out (height rows of width × channels × depth/8 bytes); 1 on success,
/// else 0 with r->message.
static inline int cpng_finish(cpng_reader *r, unsigned char *out) {
    if (setjmp(png_jmpbuf(r->png))) return 0;
    size_t stride = (size_t)r->width * (size_t)r->channels * (size_t)(r->depth / 8);
    if (png_get_rowbytes(r->png, r->info) != stride) png_error(r->png, "unexpected row size");
    r->rows = (png_bytep *)malloc(sizeof(png_bytep) * (r->height ? r->height : 1));
    if (!r->rows) png_error(r->png, "out of memory for the row table");
    for (unsigned y = 0; y < r->height; y++) r->rows[y] = out + (size_t)y * stride;
    png_read_image(r->png, r->rows);
    // The chunks after the image, to IEND: a file cut there, or damaged there, is refused as
    // one cut or damaged anywhere else is.
    png_read_end(r->png, NULL);
    return 1;
}

/// Frees what cpng_begin and cpng_finish made; always call it, whatever they returned.
static inline void cpng_end(cpng_reader *r) {
    if (r->png) png_destroy_read_struct(&r->png, r->info ? &r->info : NULL, NULL);
    free(r->rows);
    r->rows = NULL;
}
