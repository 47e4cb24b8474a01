/*
 * fuzz_gate.c -- libFuzzer target for gate_scan (fcgi/gate.c), which looks
 * at the bytes an API caller has sent so far before libfcgi reads them.
 *
 * Input: the bytes. Checks: nothing reads outside them (ASan), and the
 * answer only ever moves forward as bytes arrive: once a prefix is a whole
 * request or not FastCGI, every longer input says the same.
 */
#include <stdint.h>
#include <stdlib.h>

#include "gate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum gate_result whole = gate_scan(data, size);

    for (size_t i = 0; i < size; i++) {
        enum gate_result r = gate_scan(data, i);

        if (r != GATE_PARTIAL && r != whole)
            abort();
    }
    return 0;
}
