#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "warm.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"

/* The text of the pending Python exception, for a log line. */
static void exception_text(char *buf, size_t len)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *name = type ? ((PyTypeObject *)type)->tp_name : "error";
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(buf, len, "%s: %s", name, msg ? msg : "");
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

int warm_init(const char *harness_dir, const char *preload, char *err, size_t errlen)
{
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    /* The executor keeps its own signal dispositions. */
    config.install_signal_handlers = 0;
    config.write_bytecode = 0;
    /* Where the interpreter finds its standard library: the same prefix as
     * the system's python3 (libpython is the system's). */
    PyStatus st = PyConfig_SetBytesString(&config, &config.program_name, WARM_PYTHON);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        snprintf(err, errlen, "cannot start the embedded interpreter: %s",
                 st.err_msg ? st.err_msg : "unknown error");
        return -1;
    }

    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *dir = PyUnicode_DecodeFSDefault(harness_dir);
    if (!path || !dir || PyList_Insert(path, 0, dir) < 0) {
        Py_XDECREF(dir);
        exception_text(err, errlen);
        return -1;
    }
    Py_DECREF(dir);
    PyObject *harness = PyImport_ImportModule("stratq._harness");
    if (!harness) {
        exception_text(err, errlen);
        return -1;
    }
    Py_DECREF(harness);

    char list[1024];
    snprintf(list, sizeof(list), "%s", preload ? preload : "");
    for (char *save, *name = strtok_r(list, ", ", &save); name;
         name = strtok_r(NULL, ", ", &save)) {
        PyObject *m = PyImport_ImportModule(name);
        if (!m) {
            char why[300];
            exception_text(why, sizeof(why));
            log_warn("a preload module would not import; going on without it", "{s:s, s:s}",
                     "module", name, "error", why);
            continue;
        }
        Py_DECREF(m);
        log_debug("preloaded", "{s:s}", "module", name);
    }
    /* Everything allocated so far is shared by every child: keep the
     * collector from touching (and so copying) those pages after a fork. */
    PyRun_SimpleString("import gc; gc.collect(); gc.freeze()");
    return 0;
}

pid_t warm_fork(void)
{
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    return pid;
}

void warm_child_run(void)
{
    PyObject *harness = PyImport_ImportModule("stratq._harness");
    PyObject *r = harness ? PyObject_CallMethod(harness, "main", "s", "warm") : NULL;
    if (!r)
        PyErr_Print();
    /* main() ends the process itself; getting here means it failed. */
    _exit(125);
}
