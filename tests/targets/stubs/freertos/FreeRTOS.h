#pragma once
typedef unsigned int UBaseType_t;
typedef void *TaskHandle_t;
