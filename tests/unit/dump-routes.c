/* Prints the route table as "METHOD PATH ROLE" lines, "conditional" after the routes so marked. */
#include <stdio.h>

#include "server/router.h"

int
main(void)
{
    for (size_t i = 0; i < router_table_len; i++)
        printf("%s %s %s%s\n", router_table[i].method, router_table[i].path,
               role_name(router_table[i].role), router_table[i].conditional ? " conditional" : "");
    return 0;
}
