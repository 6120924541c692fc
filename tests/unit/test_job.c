/* Unit tests for src/common/job.c: job spec validation and its messages. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/job.h"

static const struct job_limits lim = {300, 3600, 1024, 4096};

static int parse(const char *text, json_t **spec, char *err)
{
    return job_spec_parse(text, strlen(text), &lim, spec, err, 512);
}

static void expect_error(const char *text, const char *needle)
{
    char err[512] = "";
    json_t *spec = NULL;
    assert_int_equal(parse(text, &spec, err), -EINVAL);
    assert_null(spec);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not contain '%s'", err, needle);
}

static void test_defaults_filled(void **state)
{
    (void)state;
    char err[512];
    json_t *spec = NULL;
    assert_int_equal(parse("{\"code\": \"def run(ctx): pass\"}", &spec, err), 0);
    assert_string_equal(json_string_value(json_object_get(spec, "entrypoint")), "run");
    assert_true(json_is_object(json_object_get(spec, "params")));
    assert_int_equal(json_integer_value(json_object_get(spec, "timeout_s")), 300);
    assert_int_equal(json_integer_value(json_object_get(spec, "memory_mb")), 1024);
    json_decref(spec);
}

static void test_given_values_kept(void **state)
{
    (void)state;
    char err[512];
    json_t *spec = NULL;
    assert_int_equal(parse("{\"code\":\"x\",\"entrypoint\":\"main\",\"params\":{\"a\":1},"
                           "\"data\":[1,2],\"timeout_s\":2.5,\"memory_mb\":256}",
                           &spec, err),
                     0);
    assert_string_equal(json_string_value(json_object_get(spec, "entrypoint")), "main");
    assert_true(json_number_value(json_object_get(spec, "timeout_s")) == 2.5);
    assert_int_equal(json_integer_value(json_object_get(spec, "memory_mb")), 256);
    assert_int_equal(json_array_size(json_object_get(spec, "data")), 2);
    json_decref(spec);
}

static void test_data_csv(void **state)
{
    (void)state;
    char err[512];
    json_t *spec = NULL;
    assert_int_equal(parse("{\"code\":\"x\",\"data_csv\":\"a,b\\n1,2\\n\"}", &spec, err), 0);
    assert_string_equal(json_string_value(json_object_get(spec, "data_csv")), "a,b\n1,2\n");
    json_decref(spec);
    expect_error("{\"code\":\"x\",\"data_csv\":[1]}",
                 "field 'data_csv' must be a string (CSV text), not array");
    expect_error("{\"code\":\"x\",\"data\":[1],\"data_csv\":\"a\\n\"}",
                 "field 'data_csv' cannot be given with 'data'");
}

static void test_malformed_json_has_line_and_column(void **state)
{
    (void)state;
    expect_error("{\n  \"code\": \"x\",\n  oops\n}", "line 3, column");
}

static void test_missing_code(void **state)
{
    (void)state;
    expect_error("{\"params\": {}}", "'code'");
}

static void test_wrong_types_name_field_and_type(void **state)
{
    (void)state;
    expect_error("{\"code\": 5}", "field 'code' must be a string, not number");
    expect_error("{\"code\": \"x\", \"params\": []}",
                 "field 'params' must be an object, not array");
    expect_error("{\"code\": \"x\", \"timeout_s\": \"9\"}", "field 'timeout_s' must be a number");
    expect_error("{\"code\": \"x\", \"memory_mb\": 1.5}", "field 'memory_mb' must be an integer");
    expect_error("{\"code\": \"x\", \"entrypoint\": 3}", "field 'entrypoint' must be a string");
    expect_error("[]", "must be a JSON object, not array");
}

static void test_limits_enforced(void **state)
{
    (void)state;
    expect_error("{\"code\": \"x\", \"timeout_s\": 0}", "'timeout_s' must be greater than 0");
    expect_error("{\"code\": \"x\", \"timeout_s\": 3601}", "at most 3600");
    expect_error("{\"code\": \"x\", \"memory_mb\": 5000}", "at most 4096");
    expect_error("{\"code\": \"\"}", "'code' must not be empty");
    expect_error("{\"code\": \"x\", \"entrypoint\": \"a b\"}", "Python identifier");
}

static void test_unknown_field_named(void **state)
{
    (void)state;
    expect_error("{\"code\": \"x\", \"colour\": 1}", "unknown field 'colour'");
}

static void test_duplicate_keys_refused(void **state)
{
    (void)state;
    expect_error("{\"code\": \"x\", \"code\": \"y\"}", "duplicate");
}

static void test_retry_policy_fields(void **state)
{
    (void)state;
    char err[512];
    json_t *spec = NULL;
    assert_int_equal(parse("{\"code\": \"x\"}", &spec, err), 0);
    assert_int_equal(json_integer_value(json_object_get(spec, "max_attempts")), 1);
    assert_true(json_number_value(json_object_get(spec, "retry_backoff_s")) == 2);
    json_decref(spec);
    expect_error("{\"code\": \"x\", \"max_attempts\": 0}", "'max_attempts' must be greater than 0");
    expect_error("{\"code\": \"x\", \"max_attempts\": 1.5}", "'max_attempts' must be an integer");
    expect_error("{\"code\": \"x\", \"retry_backoff_s\": -1}", "'retry_backoff_s' must be from 0");
    expect_error("{\"code\": \"x\", \"retry_backoff_s\": \"1\"}", "must be a number");
}

static void test_retry_delay_is_exponential_capped_and_jittered(void **state)
{
    (void)state;
    /* Half of the delay is fixed, half is random. */
    assert_int_equal(job_retry_delay_ms(2, 1, 300, 0.0), 1000);
    assert_int_equal(job_retry_delay_ms(2, 1, 300, 0.999999), 1999);
    assert_int_equal(job_retry_delay_ms(2, 3, 300, 0.0), 4000);
    assert_int_equal(job_retry_delay_ms(2, 3, 300, 0.5), 6000);
    /* The cap holds however many failures there were. */
    assert_int_equal(job_retry_delay_ms(2, 60, 300, 0.0), 150000);
    assert_int_equal(job_retry_delay_ms(2, 60, 300, 0.999999), 299999);
    assert_int_equal(job_retry_delay_ms(0, 5, 300, 0.7), 0);
}

static void test_nesting_and_params_limits(void **state)
{
    (void)state;
    char deep[400] = "{\"code\": \"x\", \"data\": ";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    for (int i = 0; i < 70; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    expect_error(deep, "deeper than 64 levels");
}

static void test_too_many_values_refused_before_parsing(void **state)
{
    (void)state;
    /* 1,000,001 values in "params": refused by count, not parsed (which
     * would build a million jansson values). */
    size_t n = JOB_JSON_MAX_VALUES;
    char *text = malloc(64 + 3 * n);
    assert_non_null(text);
    char *p = text + sprintf(text, "{\"code\": \"x\", \"params\": {\"a\": [");
    for (size_t i = 0; i < n; i++) {
        memcpy(p, i ? ",{}" : "{}", i ? 3 : 2);
        p += i ? 3 : 2;
    }
    strcpy(p, "]}}");
    expect_error(text, "more than 1000000 values");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_filled),
        cmocka_unit_test(test_given_values_kept),
        cmocka_unit_test(test_data_csv),
        cmocka_unit_test(test_malformed_json_has_line_and_column),
        cmocka_unit_test(test_missing_code),
        cmocka_unit_test(test_wrong_types_name_field_and_type),
        cmocka_unit_test(test_limits_enforced),
        cmocka_unit_test(test_too_many_values_refused_before_parsing),
        cmocka_unit_test(test_unknown_field_named),
        cmocka_unit_test(test_duplicate_keys_refused),
        cmocka_unit_test(test_retry_policy_fields),
        cmocka_unit_test(test_retry_delay_is_exponential_capped_and_jittered),
        cmocka_unit_test(test_nesting_and_params_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
