/* Arduino sketch for the benchmark: one run at start-up, another each time the host sends 'B'. */
#include <Arduino.h>

#include "ef_board.h"
#include "harness.h"

void setup() {
    ef_board_init();
    ef_harness_run();
}

void loop() {
    while (Serial.available() > 0) {
        int c = Serial.read();
        if (c == 'B' || c == 'b') ef_harness_run();
    }
    delay(5);
}
