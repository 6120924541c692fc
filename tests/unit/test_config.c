/* Unit tests for src/common/config.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

static int load(unsigned cmd, int argc, char **argv, char ***args, int *nargs, char *err)
{
    return config_load(cmd, argc, argv, args, nargs, err, 256);
}

static void test_defaults(void **state)
{
    (void)state;
    char err[256], **args;
    int nargs;
    unsetenv("STRATQ_QUEUE");
    assert_int_equal(load(CMD_WORKER, 0, NULL, &args, &nargs, err), 0);
    assert_string_equal(config_str(CFG_QUEUE), "python_execution_queue");
    assert_int_equal(config_int(CFG_HEARTBEAT), 5);
    assert_false(config_is_set(CFG_QUEUE));
    config_free();
}

static void test_env_then_flags(void **state)
{
    (void)state;
    char err[256], **args;
    int nargs;
    setenv("STRATQ_QUEUE", "from_env", 1);
    setenv("STRATQ_HEARTBEAT_S", "7", 1);
    char *argv[] = {"--heartbeat", "9", "pos1", "--prefix=pfx", "pos2"};
    assert_int_equal(load(CMD_WORKER, 5, argv, &args, &nargs, err), 0);
    assert_string_equal(config_str(CFG_QUEUE), "from_env");
    assert_true(config_is_set(CFG_QUEUE));
    assert_int_equal(config_int(CFG_HEARTBEAT), 9);
    assert_string_equal(config_str(CFG_PREFIX), "pfx");
    assert_int_equal(nargs, 2);
    assert_string_equal(args[0], "pos1");
    assert_string_equal(args[1], "pos2");
    unsetenv("STRATQ_QUEUE");
    unsetenv("STRATQ_HEARTBEAT_S");
    config_free();
}

static void test_errors_say_what_is_wrong(void **state)
{
    (void)state;
    char err[256], **args;
    int nargs;
    char *bad_int[] = {"--heartbeat", "soon"};
    assert_int_equal(load(CMD_WORKER, 2, bad_int, &args, &nargs, err), -EINVAL);
    assert_non_null(strstr(err, "not an integer"));
    char *range[] = {"--heartbeat=0"};
    assert_int_equal(load(CMD_WORKER, 1, range, &args, &nargs, err), -EINVAL);
    assert_non_null(strstr(err, "out of range [1, 300]"));
    /* An option of another subcommand is unknown here. */
    char *other[] = {"--workers", "3"};
    assert_int_equal(load(CMD_WORKER, 2, other, &args, &nargs, err), -EINVAL);
    assert_non_null(strstr(err, "unknown option '--workers'"));
    char *missing[] = {"--queue"};
    assert_int_equal(load(CMD_WORKER, 1, missing, &args, &nargs, err), -EINVAL);
    assert_non_null(strstr(err, "needs a value"));
    setenv("STRATQ_MAX_BODY", "12", 1);
    assert_int_equal(load(CMD_API, 0, NULL, &args, &nargs, err), -EINVAL);
    assert_non_null(strstr(err, "STRATQ_MAX_BODY"));
    unsetenv("STRATQ_MAX_BODY");
    config_free();
}

static void test_bool_flags_and_help(void **state)
{
    (void)state;
    char err[256], **args;
    int nargs;
    char *argv[] = {"f.py", "--wait", "--json=false"};
    assert_int_equal(load(CMD_SUBMIT, 3, argv, &args, &nargs, err), 0);
    assert_true(config_bool(CFG_WAIT));
    assert_false(config_bool(CFG_JSON));
    char *help[] = {"--help"};
    assert_int_equal(load(CMD_SUBMIT, 1, help, &args, &nargs, err), 1);
    config_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_env_then_flags),
        cmocka_unit_test(test_errors_say_what_is_wrong),
        cmocka_unit_test(test_bool_flags_and_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
