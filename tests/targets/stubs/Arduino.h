/* Declarations only, for `g++ -fsyntax-only` of the Arduino board ports on a host without the Arduino cores
 * (the real cores come from PlatformIO). The Arduino API both cores share; each core's additions are in
 * esp32/Arduino.h (Arduino-ESP32 2.x) and mbed/ (ArduinoCore-mbed 4.x), put first on the include path. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#define DEC 10
struct EfStubSerial {
    void begin(unsigned long baud);
    explicit operator bool() const;
    size_t write(const uint8_t *buf, size_t n);
    int available();
    int read();
    /* Print's overloads, as both cores declare them */
    size_t print(const char *s);
    size_t print(char c);
    size_t print(int v, int base = DEC);
    size_t print(unsigned int v, int base = DEC);
    size_t print(long v, int base = DEC);
    size_t print(unsigned long v, int base = DEC);
    size_t print(double v, int digits = 2);
    size_t println(void);
    size_t println(const char *s);
    size_t println(char c);
    size_t println(int v, int base = DEC);
    size_t println(unsigned int v, int base = DEC);
    size_t println(long v, int base = DEC);
    size_t println(unsigned long v, int base = DEC);
    size_t println(double v, int digits = 2);
};
extern EfStubSerial Serial;
unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);
