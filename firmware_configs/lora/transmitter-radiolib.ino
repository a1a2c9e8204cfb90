// Periodic LoRa frames with a long preamble, for ambisense sensing (breathing, soil).
// Arduino + RadioLib (https://github.com/jgromes/RadioLib). SX1276 shown; for an SX1262
// use `SX1262 radio = new Module(NSS, DIO1, NRST, BUSY);` (same begin() arguments).
//
// Parameters (keep them equal to the recording's ambisense:lora object):
//   868.1 MHz (EU868 1 % sub-band; 869.525 MHz for the 10 % sub-band), BW 125 kHz, SF7,
//   CR 4/5, sync word 0x12 (private), 14 dBm, preamble 64 up-chirps, explicit header, CRC.
// Time on air with 4 payload bytes: 88.3 ms; one frame per second = 8.8 % duty cycle:
// allowed only in 869.4-869.65 MHz (10 %). At 868.1 MHz (1 %) send one frame per 10 s.

#include <RadioLib.h>

// pins of a LilyGO T-Beam / Heltec-style SX1276 board: adapt
SX1276 radio = new Module(18, 26, 23, 33);

const float FREQ_MHZ = 869.525;
const float BW_KHZ = 125.0;
const uint8_t SF = 7;
const uint8_t CR_DEN = 5;        // coding rate 4/5 (ambisense cr = 1)
const uint8_t SYNC_WORD = 0x12;
const int8_t POWER_DBM = 14;
const uint16_t PREAMBLE = 64;
const uint32_t PERIOD_MS = 1000;

uint32_t counter = 0;

void setup() {
  Serial.begin(115200);
  int state = radio.begin(FREQ_MHZ, BW_KHZ, SF, CR_DEN, SYNC_WORD, POWER_DBM, PREAMBLE);
  if (state != RADIOLIB_ERR_NONE) {
    Serial.print("radio.begin failed: ");
    Serial.println(state);
    while (true) delay(1000);
  }
  radio.setCRC(true);            // payload CRC-16
  radio.explicitHeader();
  radio.forceLDRO(false);        // automatic LDRO would also be off at SF7/125 kHz
}

void loop() {
  uint32_t t0 = millis();
  uint8_t payload[4] = {
    (uint8_t)(counter >> 24), (uint8_t)(counter >> 16), (uint8_t)(counter >> 8), (uint8_t)counter};
  int state = radio.transmit(payload, sizeof(payload));
  Serial.print("tx ");
  Serial.print(counter);
  Serial.print(" state ");
  Serial.println(state);
  counter++;
  while (millis() - t0 < PERIOD_MS) delay(1);
}
