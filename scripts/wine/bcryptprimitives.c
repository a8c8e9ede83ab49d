/*
 * For the wine tests only (scripts/check-windows), never shipped.
 *
 * Rust's standard library (1.78 and later) gets random bytes from ProcessPrng in
 * bcryptprimitives.dll, which every Windows 10 and later has. Debian 12's wine 8.0
 * has no such DLL (wine 9 added it), so the .exe files would not start under it.
 * This DLL, placed next to the .exe files in the test folder, provides ProcessPrng
 * through RtlGenRandom (advapi32's SystemFunction036), which wine 8.0 has.
 *
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!RtlGenRandom(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
