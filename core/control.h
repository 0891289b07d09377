#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H
#endif
