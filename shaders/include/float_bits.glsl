// Bit-level float classification, immune to fast-math style optimisations of isnan/isinf.
#ifndef ATTNLAB_FLOAT_BITS_GLSL
#define ATTNLAB_FLOAT_BITS_GLSL

const float FLT_MAX = 3.402823466e+38;

bool bitsIsNan(float x) { return (floatBitsToUint(x) & 0x7fffffffu) > 0x7f800000u; }
bool bitsIsPosInf(float x) { return floatBitsToUint(x) == 0x7f800000u; }
bool bitsIsNegInf(float x) { return floatBitsToUint(x) == 0xff800000u; }
float negInf() { return uintBitsToFloat(0xff800000u); }
float posInf() { return uintBitsToFloat(0x7f800000u); }

#endif
