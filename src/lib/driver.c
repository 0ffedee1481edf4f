/* sqlgate driver lookup: the built-in drivers by name. */
#include "sqlgate/driver.h"

#include <string.h>

static const sg_driver *const builtin[] = {
    &sg_driver_sqlite,
    &sg_driver_freetds,
};

const sg_driver *sg_driver_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (strcmp(builtin[i]->name, name) == 0)
            return builtin[i];
    return NULL;
}

void sg_driver_discard_all(void)
{
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (builtin[i]->discard != NULL)
            builtin[i]->discard();
}
