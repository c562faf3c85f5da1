/* fsr_pattern.h: the test pattern the emulated FSR mat sends (usbemu.c) and
 * the USB test checks (test_usb.c): a ball-like blob circling the mat, zero
 * elsewhere so the zero-run encoding is exercised, and cell (0, 0) carrying
 * the frame number (1..250) so the receiver knows which frame it got. */
#ifndef KM_FSR_PATTERN_H
#define KM_FSR_PATTERN_H

#include <math.h>
#include <stdint.h>

static inline uint8_t fsr_pattern(uint32_t k, uint32_t r, uint32_t c, uint32_t rows, uint32_t cols)
{
    if (r == 0 && c == 0)
        return (uint8_t)(k % 250 + 1);
    double cx = cols / 2.0 + cols / 4.0 * cos(k * 0.1);
    double cy = rows / 2.0 + rows / 4.0 * sin(k * 0.1);
    double d2 = (c - cx) * (c - cx) + (r - cy) * (r - cy);
    int v = (int)(240.0 * exp(-d2 / 6.0));
    return (uint8_t)(v < 3 ? 0 : v);
}

#endif
