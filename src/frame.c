/* frame.c: allocation and copying of km_frame. The cells live in one block
 * [kpa floats | raw u16 | flags u8], each part padded to 8 bytes, laid out for
 * the frame's current geometry so that a frame's used cells are contiguous and
 * the ring can move them as one run of words. Touches only its own memory. */
#include "knotmat/frame.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

size_t km_frame_block_bytes(uint32_t cells)
{
    return pad8((size_t)cells * sizeof(float)) + pad8((size_t)cells * sizeof(uint16_t)) +
           pad8(cells);
}

void km_frame_point_(km_frame *f, uint32_t cells)
{
    unsigned char *b = f->block_;
    f->kpa = (float *)(void *)b;
    f->raw = (uint16_t *)(void *)(b + pad8((size_t)cells * sizeof(float)));
    f->cell_flags =
        b + pad8((size_t)cells * sizeof(float)) + pad8((size_t)cells * sizeof(uint16_t));
}

km_frame *km_frame_new(uint32_t capacity_cells)
{
    if (capacity_cells == 0 || capacity_cells > (uint32_t)KM_FRAME_MAX_DIM * KM_FRAME_MAX_DIM)
        return NULL;
    km_frame *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    size_t bytes = km_frame_block_bytes(capacity_cells);
    f->block_ = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!f->block_) {
        free(f);
        return NULL;
    }
    memset(f->block_, 0, bytes);
    f->capacity_cells_ = capacity_cells;
    f->rows = 1;
    f->cols = 1;
    km_frame_point_(f, 1);
    return f;
}

void km_frame_free(km_frame *f)
{
    if (!f)
        return;
    free(f->block_);
    free(f);
}

int km_frame_reset(km_frame *f, uint16_t rows, uint16_t cols, float pitch_mm)
{
    if (rows == 0 || cols == 0 || rows > KM_FRAME_MAX_DIM || cols > KM_FRAME_MAX_DIM)
        return KM_EINVAL;
    uint32_t cells = (uint32_t)rows * cols;
    if (cells > f->capacity_cells_)
        return KM_ETOOBIG;
    f->rows = rows;
    f->cols = cols;
    f->pitch_mm = pitch_mm;
    f->flags = 0;
    f->n_saturated = 0;
    f->n_dead = 0;
    f->n_contacts = 0;
    f->seq = 0;
    f->device_ns = 0;
    f->host_ns = 0;
    km_frame_point_(f, cells);
    memset(f->block_, 0, km_frame_block_bytes(cells));
    return KM_OK;
}

int km_frame_copy(km_frame *dst, const km_frame *src)
{
    uint32_t cells = km_frame_cells(src);
    if (cells > dst->capacity_cells_)
        return KM_ETOOBIG;
    void *block = dst->block_;
    uint32_t cap = dst->capacity_cells_;
    *dst = *src;
    dst->block_ = block;
    dst->capacity_cells_ = cap;
    km_frame_point_(dst, cells);
    memcpy(dst->block_, src->block_, km_frame_block_bytes(cells));
    return KM_OK;
}

void km_frame_count_flags(km_frame *f)
{
    uint32_t n = km_frame_cells(f), sat = 0, dead = 0;
    for (uint32_t i = 0; i < n; i++) {
        sat += (f->cell_flags[i] & KM_CELL_SATURATED) != 0;
        dead += (f->cell_flags[i] & KM_CELL_DEAD) != 0;
    }
    f->n_saturated = sat;
    f->n_dead = dead;
}
