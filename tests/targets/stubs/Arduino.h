/* Declarations only, for `g++ -fsyntax-only` of the Arduino board ports on a host without the Arduino cores
 * (the real cores come from PlatformIO). The Arduino API both cores share; each core's additions are in
 * esp32/Arduino.h (Arduino-ESP32 2.x) and mbed/ (ArduinoCore-mbed 4.x), put first on the include path. */
#pragma once
#include <stddef.h>
#include <stdint.h>
struct EfStubSerial {
    void begin(unsigned long baud);
    explicit operator bool() const;
    size_t write(const uint8_t *buf, size_t n);
    int available();
    int read();
};
extern EfStubSerial Serial;
unsigned long millis(void);
void delay(unsigned long ms);
