/* Unit tests for src/common/advice.c: the worker scaling guide's advice
 * from the numbers, as `stratq monitor` and scripts/monitor-workers.sh
 * print it. The expected texts are written out: they are what the guide's
 * command lines print (tests/deploy/test_scripts.py checks them end to
 * end). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/advice.h"

/* Resources basis (monitor-workers.sh): nothing known but what is set. */
static struct advice_in resources(const long long *pending, size_t n, long long workers)
{
    return (struct advice_in){
        .pending = pending,
        .npending = n,
        .wait_s = ADVICE_UNKNOWN,
        .basis = ADVICE_BASIS_RESOURCES,
        .busy_percent = ADVICE_UNKNOWN,
        .cpu_percent = ADVICE_UNKNOWN,
        .memory_percent = ADVICE_UNKNOWN,
        .workers = workers,
        .env = "dev",
    };
}

/* Busy basis (stratq monitor on its own). */
static struct advice_in busy(const long long *pending, size_t n, long long workers, double pct)
{
    struct advice_in in = resources(pending, n, workers);
    in.basis = ADVICE_BASIS_BUSY;
    in.busy_percent = pct;
    in.env = NULL;
    return in;
}

static void expect(const struct advice *a, enum advice_action action, enum advice_action wanted,
                   long long suggested)
{
    assert_string_equal(advice_action_name(a->action), advice_action_name(action));
    assert_string_equal(advice_action_name(a->wanted), advice_action_name(wanted));
    assert_int_equal(a->suggested, suggested);
}

static void test_queue_above_five_scales_up_by_one_per_five_jobs(void **state)
{
    (void)state;
    const long long q[] = {12};
    struct advice_in in = resources(q, 1, 3);
    in.cpu_percent = 65;
    struct advice a;
    advice_decide(&in, &a);
    expect(&a, ADVICE_SCALE_UP, ADVICE_SCALE_UP, 5); /* 3 + ceil(7 / 5) */
    assert_int_equal(a.nreasons, 1);
    assert_string_equal(a.reasons[0], "queue length 12 > 5 now");
    assert_string_equal(a.command, "scripts/scale-workers.sh dev 5");
    assert_string_equal(a.note, "");

    /* At least one more, and never past 10. */
    const long long q6[] = {6}, q99[] = {99};
    in = resources(q6, 1, 3);
    advice_decide(&in, &a);
    expect(&a, ADVICE_SCALE_UP, ADVICE_SCALE_UP, 4);
    in = resources(q99, 1, 3);
    advice_decide(&in, &a);
    expect(&a, ADVICE_SCALE_UP, ADVICE_SCALE_UP, 10);
    /* No workers: at least the guide's 2. */
    const long long q8[] = {8};
    in = busy(q8, 1, 0, ADVICE_UNKNOWN);
    advice_decide(&in, &a);
    expect(&a, ADVICE_SCALE_UP, ADVICE_SCALE_UP, 2);
    assert_string_equal(a.command, "");
}

static void test_the_queue_must_stay_high_for_the_whole_window(void **state)
{
    (void)state;
    const long long rising[] = {9, 2}, high[] = {8, 8, 8}, five[] = {5};
    struct advice a;
    struct advice_in in = resources(rising, 2, 3);
    in.cpu_percent = 50;
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_HOLD, 3);

    in = resources(high, 3, 3);
    advice_decide(&in, &a);
    assert_string_equal(a.reasons[0], "queue length 8 > 5 in each of the last 3 samples");
    in.window_s = 30;
    advice_decide(&in, &a);
    assert_string_equal(a.reasons[0], "queue length 8 > 5 in every sample of the last 30 s");

    /* "Above 5": 5 is not. */
    in = resources(five, 1, 3);
    in.cpu_percent = 50;
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_HOLD, 3);
    assert_string_equal(a.reasons[0], "within the guide's bounds: queue 5, average wait - s, "
                                      "CPU 50%, memory -%");
}

static void test_wait_and_utilisation(void **state)
{
    (void)state;
    const long long q[] = {2}, zero[] = {0};
    struct advice a;
    struct advice_in in = resources(q, 1, 3);
    in.wait_s = 40;
    in.wait_jobs = 5;
    in.cpu_percent = 50;
    advice_decide(&in, &a);
    expect(&a, ADVICE_SCALE_UP, ADVICE_SCALE_UP, 4);
    assert_string_equal(a.reasons[0], "average wait 40 s > 30 s (last 5 jobs)");
    /* What stratq monitor's mean is over, from the wait histogram. */
    in.wait_over = "12 jobs, last 5 min";
    advice_decide(&in, &a);
    assert_string_equal(a.reasons[0], "average wait 40 s > 30 s (12 jobs, last 5 min)");
    in.wait_over = NULL;

    /* Compared as shown, in tenths: 30.04 s is 30 s. */
    in.wait_s = 30.04;
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_HOLD, 3);
    assert_string_equal(a.reasons[0], "within the guide's bounds: queue 2, average wait 30 s, "
                                      "CPU 50%, memory -%");

    in = resources(zero, 1, 3);
    in.cpu_percent = (85 + 90 + 88) / 3.0;
    in.memory_percent = 81;
    advice_decide(&in, &a);
    expect(&a, ADVICE_SCALE_UP, ADVICE_SCALE_UP, 4);
    assert_int_equal(a.nreasons, 2);
    assert_string_equal(a.reasons[0], "CPU utilisation 87.7% > 80%");
    assert_string_equal(a.reasons[1], "memory utilisation 81% > 80%");

    /* On the busy basis, CPU figures are not looked at. */
    in = busy(zero, 1, 3, 100);
    in.cpu_percent = 99;
    advice_decide(&in, &a);
    expect(&a, ADVICE_SCALE_UP, ADVICE_SCALE_UP, 4);
    assert_int_equal(a.nreasons, 1);
    assert_string_equal(a.reasons[0], "utilisation 100% > 80%");
}

static void test_scale_down_needs_an_empty_queue_and_low_utilisation(void **state)
{
    (void)state;
    const long long zero[] = {0}, zeros[] = {0, 0, 1};
    struct advice a;
    struct advice_in in = resources(zero, 1, 3);
    in.cpu_percent = 2;
    advice_decide(&in, &a);
    expect(&a, ADVICE_SCALE_DOWN, ADVICE_SCALE_DOWN, 2);
    assert_int_equal(a.nreasons, 2);
    assert_string_equal(a.reasons[0], "queue at 0 now");
    assert_string_equal(a.reasons[1], "CPU utilisation 2% < 30%");
    assert_string_equal(a.command, "scripts/scale-workers.sh dev 2");

    /* Memory, when known, must be low too. */
    in.memory_percent = 29.96;
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_HOLD, 3);
    in.memory_percent = 10;
    advice_decide(&in, &a);
    assert_string_equal(a.reasons[2], "memory utilisation 10% < 30%");

    /* Not at 0 in every sample. */
    in = resources(zeros, 3, 3);
    in.cpu_percent = 2;
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_HOLD, 3);

    /* Unknown utilisation: hold, and say why. */
    in = resources(zero, 1, 3);
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_HOLD, 3);
    assert_string_equal(a.reasons[0], "queue at 0 now, but CPU and memory utilisation are unknown");
    in = busy(zero, 1, 0, ADVICE_UNKNOWN);
    advice_decide(&in, &a);
    assert_string_equal(a.reasons[0], "queue at 0 now, but utilisation is unknown (no live "
                                      "workers)");

    in = busy(zero, 1, 3, 100.0 / 3);
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_HOLD, 3);
    assert_string_equal(a.reasons[0], "within the guide's bounds: queue 0, average wait - s, "
                                      "utilisation 33.3%");
    in.busy_percent = 0;
    advice_decide(&in, &a);
    expect(&a, ADVICE_SCALE_DOWN, ADVICE_SCALE_DOWN, 2);
    assert_string_equal(a.reasons[1], "utilisation 0% < 30%");
}

static void test_the_bounds_hold_with_a_note(void **state)
{
    (void)state;
    const long long zero[] = {0}, forty[] = {40};
    struct advice a;
    struct advice_in in = busy(zero, 1, 2, 0);
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_SCALE_DOWN, 2);
    assert_string_equal(a.note, "already at the guide's minimum of 2 workers");
    assert_string_equal(a.command, "");

    in = resources(forty, 1, 10);
    in.cpu_percent = 99;
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_SCALE_UP, 10);
    assert_string_equal(a.reasons[0], "queue length 40 > 5 now");
    assert_string_equal(a.note, "already at the guide's maximum of 10 workers: make the jobs "
                                "cheaper or give each worker more CPU and memory");
    assert_string_equal(a.command, "");

    /* A pool scaled past a bound by hand is not told to move the other way. */
    in.workers = 12;
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_SCALE_UP, 12);
    in = busy(zero, 1, 1, 0);
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_SCALE_DOWN, 1);
}

static void test_an_autoscaler_gets_pin_and_a_note(void **state)
{
    (void)state;
    const long long seven[] = {7};
    struct advice a;
    struct advice_in in = resources(seven, 1, 3);
    in.env = "prod";
    in.autoscaler = "worker-hpa";
    in.autoscaler_min = 2;
    in.autoscaler_max = 10;
    advice_decide(&in, &a);
    expect(&a, ADVICE_SCALE_UP, ADVICE_SCALE_UP, 4);
    assert_string_equal(a.command, "scripts/scale-workers.sh prod 4 --pin");
    assert_non_null(strstr(a.note, "the HPA worker-hpa (min 2, max 10) manages the count"));
}

static void test_unknown_numbers(void **state)
{
    (void)state;
    const long long q[] = {12};
    struct advice a;
    struct advice_in in = resources(NULL, 0, ADVICE_UNKNOWN);
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_HOLD, ADVICE_UNKNOWN);
    assert_int_equal(a.workers, ADVICE_UNKNOWN);
    assert_int_equal(a.nreasons, 1);
    assert_string_equal(a.reasons[0], "queue length unknown");

    /* Scale up wanted, but from what? */
    in = resources(q, 1, ADVICE_UNKNOWN);
    advice_decide(&in, &a);
    expect(&a, ADVICE_HOLD, ADVICE_SCALE_UP, ADVICE_UNKNOWN);
    assert_string_equal(a.note, "the number of workers is unknown");
    assert_string_equal(a.command, "");
}

static void test_json(void **state)
{
    (void)state;
    const long long zero[] = {0};
    json_t *o = json_object();
    struct advice_in in = resources(zero, 1, 3);
    in.cpu_percent = 1;
    assert_int_equal(advice_fill_json(&in, o), 0);
    assert_string_equal(json_string_value(json_object_get(o, "action")), "scale_down");
    assert_string_equal(json_string_value(json_object_get(o, "wanted")), "scale_down");
    assert_int_equal(json_array_size(json_object_get(o, "reasons")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "workers")), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "suggested_workers")), 2);
    assert_string_equal(json_string_value(json_object_get(o, "command")),
                        "scripts/scale-workers.sh dev 2");
    assert_true(json_is_null(json_object_get(o, "note")));
    assert_int_equal(json_object_size(o), 7);
    json_decref(o);

    o = json_object();
    in = resources(NULL, 0, ADVICE_UNKNOWN);
    assert_int_equal(advice_fill_json(&in, o), 0);
    assert_true(json_is_null(json_object_get(o, "workers")));
    assert_true(json_is_null(json_object_get(o, "suggested_workers")));
    assert_true(json_is_null(json_object_get(o, "command")));
    json_decref(o);
}

static void test_numbers_print_as_jq_prints_them(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {40, "40"}, {10.5, "10.5"},           {87.7, "87.7"}, {0.1, "0.1"},
        {0, "0"},   {536870912, "536870912"}, {-2.5, "-2.5"}, {19.9, "19.9"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        advice_fmt_num(cases[i].v, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
    }
    assert_true(advice_round1(87.666) == 87.7);
    assert_true(advice_round1(0.05) == 0.1);
    assert_true(advice_round1(10.449) == 10.4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_above_five_scales_up_by_one_per_five_jobs),
        cmocka_unit_test(test_the_queue_must_stay_high_for_the_whole_window),
        cmocka_unit_test(test_wait_and_utilisation),
        cmocka_unit_test(test_scale_down_needs_an_empty_queue_and_low_utilisation),
        cmocka_unit_test(test_the_bounds_hold_with_a_note),
        cmocka_unit_test(test_an_autoscaler_gets_pin_and_a_note),
        cmocka_unit_test(test_unknown_numbers),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_numbers_print_as_jq_prints_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
