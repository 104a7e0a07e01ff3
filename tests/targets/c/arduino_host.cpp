/* The Arduino calls an example sketch makes, implemented on the host (stdout is the serial port), and a main that
 * runs setup() once: links a sketch built against tests/targets/stubs/Arduino.h into a host program. */
#include <Arduino.h>
#include <stdio.h>
#include <time.h>

EfStubSerial Serial;

void EfStubSerial::begin(unsigned long) {}
EfStubSerial::operator bool() const { return true; }
size_t EfStubSerial::write(const uint8_t *buf, size_t n) { return fwrite(buf, 1, n, stdout); }
int EfStubSerial::available() { return 0; }
int EfStubSerial::read() { return -1; }
size_t EfStubSerial::print(const char *s) { return (size_t)printf("%s", s); }
size_t EfStubSerial::print(char c) { return (size_t)printf("%c", c); }
size_t EfStubSerial::print(int v, int) { return (size_t)printf("%d", v); }
size_t EfStubSerial::print(unsigned int v, int) { return (size_t)printf("%u", v); }
size_t EfStubSerial::print(long v, int) { return (size_t)printf("%ld", v); }
size_t EfStubSerial::print(unsigned long v, int) { return (size_t)printf("%lu", v); }
size_t EfStubSerial::print(double v, int digits) { return (size_t)printf("%.*f", digits, v); }
size_t EfStubSerial::println(void) { return (size_t)printf("\r\n"); }
size_t EfStubSerial::println(const char *s) { return print(s) + println(); }
size_t EfStubSerial::println(char c) { return print(c) + println(); }
size_t EfStubSerial::println(int v, int b) { return print(v, b) + println(); }
size_t EfStubSerial::println(unsigned int v, int b) { return print(v, b) + println(); }
size_t EfStubSerial::println(long v, int b) { return print(v, b) + println(); }
size_t EfStubSerial::println(unsigned long v, int b) { return print(v, b) + println(); }
size_t EfStubSerial::println(double v, int d) { return print(v, d) + println(); }

static unsigned long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long)ts.tv_sec * 1000000UL + (unsigned long)(ts.tv_nsec / 1000);
}
unsigned long micros(void) { return now_us(); }
unsigned long millis(void) { return now_us() / 1000; }
void delay(unsigned long) {}

void setup();
int main() {
    setup();
    return 0;
}
