/*
 * watcher.rules._keyscan: the compiled matcher's inner loop (watcher/rules/compiled.py).
 *
 * One call per entry finds every key (term, phrase, alias, prefix) in each field's padded
 * text, counts the clauses those keys satisfy, and returns the rules whose clauses all hold.
 * Python builds every table (compiled.py); this file only walks them. Measured against
 * pyahocorasick plus Python sets (benchmarks/README.md): a Python object per key found and
 * per clause was the cost that grew with the number of rules.
 *
 * Every key starts with a space and the text is " token token ... ", so each occurrence of
 * a key starts at a space: walking the trie from each space finds all of them, overlapping
 * ones included, with no failure links.
 *
 * Thread safety: the scan runs with the GIL held. Its scratch arrays belong to the object;
 * a call made while they are in use (only possible from a finalizer run by the collector
 * while the results are built) gets scratch of its own.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DENSE_ABOVE 4 /* a node with more edges than this gets a row of `dense` */

/* Which sides of a NEAR check have a key found in this field: bit 0 left, bit 1 right. */
typedef struct {
    uint32_t seen; /* the field generation `sides` belongs to */
    uint32_t sides;
} CheckState;

/* A clause's rules (in clause_rule_need) beside the mark read before them. */
typedef struct {
    uint32_t seen; /* the call generation that last satisfied the clause */
    int32_t first, last;
} ClauseState;

/* Side by side, so that bumping a rule's count touches one cache line. */
typedef struct {
    uint32_t seen;  /* the call generation `count` belongs to */
    int32_t count;  /* clauses satisfied in this call */
} RuleCount;

typedef struct {
    uint32_t generation;
    uint32_t *key_seen;    /* n_keys: the field generation that last found the key */
    ClauseState *clauses;  /* n_clauses */
    RuleCount *rules;      /* n_rules, by number (number_rules) */
    int32_t *candidates;   /* n_rules */
    Py_ssize_t candidate_count;
    int32_t *found; /* key ids found, field after field */
    Py_ssize_t found_count, found_capacity;
    /* Occurrences of the keys NEAR checks look at, in this field: per key a list through
     * occ, from occ_head (valid once key_seen says the key is found in the field). */
    int32_t *occ_head;             /* n_keys */
    int32_t *occ; /* per occurrence: its token position, then the key's previous one or -1 */
    Py_ssize_t occ_count, occ_capacity; /* occurrences; int32s */
    CheckState *checks;   /* n_checks */
    int32_t *pending;     /* n_checks: checks to decide once the field is scanned */
    Py_ssize_t pending_count;
    int32_t *pair_buffer; /* the occurrences of a check's sides */
    Py_ssize_t pair_capacity;
} Scratch;

/* All a step of the walk reads about a node, in 4 bytes: bits 0-1 its kind, bit 2 whether
 * a key ends there, bits 3-4 a SPARSE node's edge count less 1, and from bit 5 a ONE_EDGE
 * node's label, a SPARSE node's first edge in `sparse_edges` or a DENSE node's row of
 * `dense`. A ONE_EDGE node's only edge leads to the next node; keyscan.py numbers the trie
 * so that this holds below its first levels (depth first there), where the long chains of
 * rare keys become runs of consecutive words, 16 nodes to a cache line (59,000 nodes for
 * 10,000 rules: 236 KB). A node with one edge elsewhere is SPARSE. */
enum { LEAF, ONE_EDGE, SPARSE, DENSE };
#define KIND(step) ((step) & 3u)
#define HAS_KEY 4u
/* Set in node_key by load_near for a key NEAR checks look at: the walk learns
 * it with the key id instead of from `positional`, another array. */
#define POSITIONAL_KEY (1 << 30)
#define SPARSE_COUNT(step) ((((step) >> 3) & 3u) + 1)
#define REF(step) ((step) >> 5)
#define MAX_REF ((1u << 27) - 1)
#define MAX_SPARSE_TARGET ((1 << 24) - 1) /* a packed sparse edge keeps 24 bits of target */
/* Measured (cachegrind, 10,000 rules): 256-entry rows above 8 or 16 edges cost more
 * instructions for the same misses; with a column per byte class, rows above 3 edges cost
 * 2% fewer instructions and 1% more misses than above 4. */
_Static_assert(DENSE_ABOVE >= 1 && DENSE_ABOVE - 1 <= 3, "a SPARSE count has two bits");

typedef struct {
    PyObject_HEAD
    int32_t n_nodes, n_keys, n_fields, n_clauses, n_rules;
    /* The edges as Python gave them (keyscan.py), freed once steps, sparse_edges and dense
     * are built from them; clause_rule and rule_need likewise. */
    int32_t *edge_start; /* n_nodes + 1 */
    uint8_t *edge_label;
    int32_t *edge_target;
    int32_t *node_key; /* n_nodes: the key id that ends at the node (| POSITIONAL_KEY), or -1 */
    uint32_t *steps;   /* n_nodes: see above */
    int32_t after_space; /* the node the root's only edge (a space) leads to, or -1 */
    /* A DENSE node's row: per byte class (byte_class[byte]) the target, or -1. Only the
     * bytes some such node has an edge for get a class of their own: a few dozen, for
     * rows several times smaller than 256 entries. */
    int32_t *dense;
    uint8_t byte_class[256];
    uint32_t row_width; /* classes */
    uint32_t *sparse_edges; /* a SPARSE node's edges, side by side: label | target << 8 */
    int32_t **field_key_start;  /* per field: n_keys + 1 (as given; freed once built) */
    int32_t **field_key_clause; /* per field: the clauses a key found there satisfies */
    /* Per field and key, read instead: the only clause the key satisfies there (>= 0), none
     * (-1), or -(2 + where its clauses start in field_key_list: their count, then them). */
    int32_t **field_key_ref;
    int32_t **field_key_list;
    int32_t *clause_rule_start; /* n_clauses + 1 */
    int32_t *clause_rule;
    int32_t *rule_need; /* n_rules: how many clauses the rule has */
    /* Per item of clause_rule, the rule's number in the scan (number_rules) and its need,
     * read together; rule_external: per number, the rule. */
    int32_t *clause_rule_need;
    int32_t *rule_external;
    /* NEAR checks: each is found, as key near_key[c], in a field where an occurrence of a
     * key of its left side and one of its right side lie at most near_distance[c] tokens
     * apart without overlapping. Its entries are (field, side, key, length in tokens). */
    int32_t n_checks;
    int32_t *near_key, *near_distance, *near_entry_start, *near_entry;
    /* Per check and field: where its left entries start, its right ones start, and both
     * end (the entries of one field are left then right, in one run). */
    int32_t *near_range;
    uint8_t *positional; /* n_keys: whether a NEAR check looks at the key's occurrences */
    int32_t **field_key_check_start; /* per field: n_keys + 1 */
    int32_t **field_key_check; /* per field: check << 1 | side, for each side a key is on */
    Scratch scratch;
    int busy;
} KeyScanner;

/* --- building ------------------------------------------------------------------------ */

/* A copy of a buffer of 4-byte integers (array('i')); *length set to its item count. */
static int32_t *
copy_ints(PyObject *source, const char *name, Py_ssize_t *length)
{
    Py_buffer view;
    if (PyObject_GetBuffer(source, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return NULL;
    }
    if (view.itemsize != 4 || view.format == NULL ||
        (strcmp(view.format, "i") != 0 && strcmp(view.format, "=i") != 0)) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_TypeError, "%s: expected array('i')", name);
        return NULL;
    }
    Py_ssize_t count = view.len / 4;
    int32_t *copy = PyMem_Malloc(count > 0 ? (size_t)view.len : 4);
    if (copy == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return NULL;
    }
    if (count > 0) {
        memcpy(copy, view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    *length = count;
    return copy;
}

static int
check_range(const int32_t *values, Py_ssize_t count, int32_t low, int32_t high, const char *name)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        if (values[i] < low || values[i] >= high) {
            PyErr_Format(PyExc_ValueError, "%s[%zd] = %d is out of range", name, i, values[i]);
            return -1;
        }
    }
    return 0;
}

/* starts: count + 1 ascending offsets from 0 to total. */
static int
check_starts(const int32_t *starts, Py_ssize_t length, Py_ssize_t count, Py_ssize_t total,
             const char *name)
{
    if (length != count + 1 || starts[0] != 0 || starts[count] != total) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd offsets from 0 to %zd", name,
                     count + 1, total);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (starts[i] > starts[i + 1]) {
            PyErr_Format(PyExc_ValueError, "%s is not ascending at %zd", name, i);
            return -1;
        }
    }
    return 0;
}

static void
scratch_free(Scratch *scratch)
{
    PyMem_Free(scratch->key_seen);
    PyMem_Free(scratch->clauses);
    PyMem_Free(scratch->rules);
    PyMem_Free(scratch->candidates);
    PyMem_Free(scratch->found);
    PyMem_Free(scratch->occ_head);
    PyMem_Free(scratch->occ);
    PyMem_Free(scratch->checks);
    PyMem_Free(scratch->pending);
    PyMem_Free(scratch->pair_buffer);
    memset(scratch, 0, sizeof(*scratch));
}

static int
scratch_init(Scratch *scratch, const KeyScanner *self)
{
    memset(scratch, 0, sizeof(*scratch));
    scratch->key_seen = PyMem_Calloc((size_t)self->n_keys + 1, sizeof(uint32_t));
    scratch->clauses = PyMem_Calloc((size_t)self->n_clauses + 1, sizeof(ClauseState));
    scratch->rules = PyMem_Calloc((size_t)self->n_rules + 1, sizeof(RuleCount));
    scratch->candidates = PyMem_Calloc((size_t)self->n_rules + 1, sizeof(int32_t));
    scratch->found_capacity = 256;
    scratch->found = PyMem_Malloc((size_t)scratch->found_capacity * sizeof(int32_t));
    scratch->occ_head = PyMem_Calloc((size_t)self->n_keys + 1, sizeof(int32_t));
    scratch->occ_capacity = 128;
    scratch->occ = PyMem_Malloc((size_t)scratch->occ_capacity * sizeof(int32_t));
    scratch->checks = PyMem_Calloc((size_t)self->n_checks + 1, sizeof(CheckState));
    scratch->pending = PyMem_Calloc((size_t)self->n_checks + 1, sizeof(int32_t));
    if (!scratch->key_seen || !scratch->clauses || !scratch->rules || !scratch->candidates ||
        !scratch->found || !scratch->occ_head || !scratch->occ ||
        !scratch->checks || !scratch->pending) {
        scratch_free(scratch);
        PyErr_NoMemory();
        return -1;
    }
    for (int32_t clause = 0; clause < self->n_clauses; clause++) {
        scratch->clauses[clause].first = self->clause_rule_start[clause];
        scratch->clauses[clause].last = self->clause_rule_start[clause + 1];
    }
    return 0;
}

/* A table of one array per field, as far as it was built. */
static void
free_per_field(int32_t **tables, int32_t n_fields)
{
    for (int32_t f = 0; tables != NULL && f < n_fields; f++) {
        PyMem_Free(tables[f]);
    }
    PyMem_Free(tables);
}

static void
KeyScanner_dealloc(KeyScanner *self)
{
    PyMem_Free(self->edge_start);
    PyMem_Free(self->edge_label);
    PyMem_Free(self->edge_target);
    PyMem_Free(self->node_key);
    PyMem_Free(self->steps);
    PyMem_Free(self->dense);
    PyMem_Free(self->sparse_edges);
    free_per_field(self->field_key_start, self->n_fields);
    free_per_field(self->field_key_clause, self->n_fields);
    free_per_field(self->field_key_ref, self->n_fields);
    free_per_field(self->field_key_list, self->n_fields);
    PyMem_Free(self->clause_rule_start);
    PyMem_Free(self->clause_rule);
    PyMem_Free(self->clause_rule_need);
    PyMem_Free(self->rule_external);
    PyMem_Free(self->rule_need);
    PyMem_Free(self->near_key);
    PyMem_Free(self->near_distance);
    PyMem_Free(self->near_entry_start);
    PyMem_Free(self->near_entry);
    PyMem_Free(self->near_range);
    PyMem_Free(self->positional);
    free_per_field(self->field_key_check_start, self->n_fields);
    free_per_field(self->field_key_check, self->n_fields);
    scratch_free(&self->scratch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
build_nodes(KeyScanner *self)
{
    if (self->n_nodes > MAX_SPARSE_TARGET) {
        PyErr_SetString(PyExc_ValueError, "node_key: too many nodes");
        return -1;
    }
    self->steps = PyMem_Malloc(((size_t)self->n_nodes + 1) * sizeof(uint32_t));
    if (self->steps == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* First pass: each node's kind, and how much room its edges take elsewhere. */
    uint32_t rows = 0, sparse_count = 0;
    uint8_t labelled[256] = {0}; /* bytes on an edge of a DENSE node */
    for (int32_t index = 0; index < self->n_nodes; index++) {
        int32_t first = self->edge_start[index];
        int32_t count = self->edge_start[index + 1] - first;
        uint32_t step = self->node_key[index] >= 0 ? HAS_KEY : 0;
        if (count == 1 && self->edge_target[first] == index + 1) {
            step |= ONE_EDGE | (uint32_t)self->edge_label[first] << 5;
        }
        else if (count >= 1 && count <= DENSE_ABOVE) {
            if (sparse_count > MAX_REF - DENSE_ABOVE) {
                PyErr_SetString(PyExc_ValueError, "too many nodes with a few edges");
                return -1;
            }
            step |= SPARSE | (uint32_t)(count - 1) << 3 | sparse_count << 5;
            sparse_count += (uint32_t)count;
        }
        else if (count > DENSE_ABOVE) {
            if (rows > MAX_REF) {
                PyErr_SetString(PyExc_ValueError, "too many nodes with many edges");
                return -1;
            }
            step |= DENSE | rows++ << 5;
            for (int32_t edge = first; edge < first + count; edge++) {
                labelled[self->edge_label[edge]] = 1;
            }
        }
        self->steps[index] = step;
    }
    /* Class 0: the bytes no DENSE node has an edge for; a row has one column per class. */
    self->row_width = 1;
    for (int byte = 0; byte < 256; byte++) {
        self->byte_class[byte] = labelled[byte] ? (uint8_t)self->row_width++ : 0;
    }
    self->dense = PyMem_Malloc((size_t)(rows > 0 ? rows : 1) * self->row_width * sizeof(int32_t));
    self->sparse_edges = PyMem_Malloc(((size_t)sparse_count + 1) * sizeof(uint32_t));
    if (self->dense == NULL || self->sparse_edges == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < (size_t)rows * self->row_width; i++) {
        self->dense[i] = -1;
    }
    for (int32_t index = 0; index < self->n_nodes; index++) {
        uint32_t step = self->steps[index];
        int32_t first = self->edge_start[index], last = self->edge_start[index + 1];
        for (int32_t edge = first; edge < last; edge++) {
            uint8_t byte = self->edge_label[edge];
            if (KIND(step) == DENSE) {
                size_t column = self->byte_class[byte];
                self->dense[(size_t)REF(step) * self->row_width + column] =
                    self->edge_target[edge];
            }
            else if (KIND(step) == SPARSE) {
                self->sparse_edges[REF(step) + (uint32_t)(edge - first)] =
                    byte | (uint32_t)self->edge_target[edge] << 8;
            }
        }
    }
    /* Every key starts with a space: the walk from a space starts below the root. */
    int32_t root_edges = self->edge_start[1] - self->edge_start[0];
    if (root_edges > 1 || (root_edges == 1 && self->edge_label[0] != ' ')) {
        PyErr_SetString(PyExc_ValueError, "edge_label: the root's only edge must be a space");
        return -1;
    }
    self->after_space = root_edges == 1 ? self->edge_target[0] : -1;
    return 0;
}

static int
load_trie(KeyScanner *self, PyObject *starts, PyObject *labels, PyObject *targets,
          PyObject *keys)
{
    Py_ssize_t starts_length, targets_length, keys_length;
    if (!(self->edge_start = copy_ints(starts, "edge_start", &starts_length)) ||
        !(self->edge_target = copy_ints(targets, "edge_target", &targets_length)) ||
        !(self->node_key = copy_ints(keys, "node_key", &keys_length))) {
        return -1;
    }
    if (!PyBytes_Check(labels) || PyBytes_GET_SIZE(labels) != targets_length) {
        PyErr_SetString(PyExc_ValueError, "edge_label: expected bytes, one per edge");
        return -1;
    }
    if (keys_length < 1 || keys_length > INT32_MAX - 1) {
        PyErr_SetString(PyExc_ValueError, "node_key: expected at least the root");
        return -1;
    }
    self->n_nodes = (int32_t)keys_length;
    self->edge_label = PyMem_Malloc((size_t)targets_length + 1);
    if (self->edge_label == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(self->edge_label, PyBytes_AS_STRING(labels), (size_t)targets_length);
    if (check_starts(self->edge_start, starts_length, self->n_nodes, targets_length,
                     "edge_start") < 0 ||
        check_range(self->edge_target, targets_length, 1, self->n_nodes, "edge_target") < 0 ||
        check_range(self->node_key, keys_length, -1, self->n_keys, "node_key") < 0) {
        return -1;
    }
    return build_nodes(self);
}

/* field_key_ref and field_key_list of field f, from its starts and clauses: most keys
 * satisfy one clause in a field, which is then read with the key's entry. */
static int
key_refs(KeyScanner *self, int32_t f)
{
    const int32_t *starts = self->field_key_start[f], *clauses = self->field_key_clause[f];
    Py_ssize_t listed = 0;
    for (int32_t key = 0; key < self->n_keys; key++) {
        int32_t count = starts[key + 1] - starts[key];
        listed += count > 1 ? count + 1 : 0;
    }
    if (listed > INT32_MAX - 2) {
        PyErr_SetString(PyExc_ValueError, "field_key_clause: too many clauses");
        return -1;
    }
    int32_t *refs = PyMem_Malloc(((size_t)self->n_keys + 1) * sizeof(int32_t));
    int32_t *list = PyMem_Malloc(((size_t)listed + 1) * sizeof(int32_t));
    self->field_key_ref[f] = refs;
    self->field_key_list[f] = list;
    if (refs == NULL || list == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int32_t at = 0;
    for (int32_t key = 0; key < self->n_keys; key++) {
        int32_t count = starts[key + 1] - starts[key];
        if (count <= 1) {
            refs[key] = count == 1 ? clauses[starts[key]] : -1;
            continue;
        }
        refs[key] = -(2 + at);
        list[at++] = count;
        for (int32_t i = starts[key]; i < starts[key + 1]; i++) {
            list[at++] = clauses[i];
        }
    }
    return 0;
}

static int
load_fields(KeyScanner *self, PyObject *starts_list, PyObject *clauses_list)
{
    if (!PyTuple_Check(starts_list) || !PyTuple_Check(clauses_list) ||
        PyTuple_GET_SIZE(starts_list) != PyTuple_GET_SIZE(clauses_list) ||
        PyTuple_GET_SIZE(starts_list) > 8) {
        PyErr_SetString(PyExc_ValueError,
                        "field_key_start, field_key_clause: tuples of one array per field, "
                        "at most 8");
        return -1;
    }
    self->n_fields = (int32_t)PyTuple_GET_SIZE(starts_list);
    self->field_key_start = PyMem_Calloc((size_t)self->n_fields + 1, sizeof(int32_t *));
    self->field_key_clause = PyMem_Calloc((size_t)self->n_fields + 1, sizeof(int32_t *));
    self->field_key_ref = PyMem_Calloc((size_t)self->n_fields + 1, sizeof(int32_t *));
    self->field_key_list = PyMem_Calloc((size_t)self->n_fields + 1, sizeof(int32_t *));
    if (self->field_key_start == NULL || self->field_key_clause == NULL ||
        self->field_key_ref == NULL || self->field_key_list == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (int32_t f = 0; f < self->n_fields; f++) {
        Py_ssize_t starts_length, clauses_length;
        self->field_key_start[f] =
            copy_ints(PyTuple_GET_ITEM(starts_list, f), "field_key_start", &starts_length);
        if (self->field_key_start[f] == NULL) {
            return -1;
        }
        self->field_key_clause[f] =
            copy_ints(PyTuple_GET_ITEM(clauses_list, f), "field_key_clause", &clauses_length);
        if (self->field_key_clause[f] == NULL ||
            check_starts(self->field_key_start[f], starts_length, self->n_keys, clauses_length,
                         "field_key_start") < 0 ||
            check_range(self->field_key_clause[f], clauses_length, 0, self->n_clauses,
                        "field_key_clause") < 0 ||
            key_refs(self, f) < 0) {
            return -1;
        }
    }
    return 0;
}

static int
compare_pairs(const void *left, const void *right)
{
    const int32_t *a = left, *b = right;
    return a[0] != b[0] ? (a[0] > b[0]) - (a[0] < b[0]) : (a[1] > b[1]) - (a[1] < b[1]);
}

/* The scan counts rules under numbers of its own: the rules of the clause most rules share,
 * then those of the next one, and so on, so that satisfying a clause such as @Putin, which
 * hundreds of rules need, bumps counters side by side instead of one per cache line.
 * clause_rule_need lists each clause's (rule, need) by that number; rule_external maps a
 * number back. */
static int
number_rules(KeyScanner *self)
{
    Py_ssize_t total = self->clause_rule_start[self->n_clauses];
    int32_t *by_size = PyMem_Malloc(((size_t)self->n_clauses + 1) * 2 * sizeof(int32_t));
    int32_t *number = PyMem_Malloc(((size_t)self->n_rules + 1) * sizeof(int32_t));
    self->rule_external = PyMem_Malloc(((size_t)self->n_rules + 1) * sizeof(int32_t));
    self->clause_rule_need = PyMem_Malloc(((size_t)total + 1) * 2 * sizeof(int32_t));
    if (by_size == NULL || number == NULL || self->rule_external == NULL ||
        self->clause_rule_need == NULL) {
        PyMem_Free(by_size);
        PyMem_Free(number);
        PyErr_NoMemory();
        return -1;
    }
    for (int32_t clause = 0; clause < self->n_clauses; clause++) {
        by_size[2 * clause] = -(self->clause_rule_start[clause + 1] -
                                self->clause_rule_start[clause]); /* largest first */
        by_size[2 * clause + 1] = clause;
    }
    qsort(by_size, (size_t)self->n_clauses, 2 * sizeof(int32_t), compare_pairs);
    for (int32_t rule = 0; rule < self->n_rules; rule++) {
        number[rule] = -1;
    }
    int32_t next = 0;
    for (int32_t i = 0; i < self->n_clauses; i++) {
        int32_t clause = by_size[2 * i + 1];
        for (int32_t j = self->clause_rule_start[clause]; j < self->clause_rule_start[clause + 1];
             j++) {
            if (number[self->clause_rule[j]] < 0) {
                number[self->clause_rule[j]] = next++;
            }
        }
    }
    for (int32_t rule = 0; rule < self->n_rules; rule++) {
        if (number[rule] < 0) {
            number[rule] = next++; /* in no clause: never counted */
        }
        self->rule_external[number[rule]] = rule;
    }
    for (int32_t clause = 0; clause < self->n_clauses; clause++) {
        int32_t first = self->clause_rule_start[clause], last = self->clause_rule_start[clause + 1];
        int32_t *pairs = &self->clause_rule_need[2 * first];
        for (int32_t j = first; j < last; j++) {
            pairs[2 * (j - first)] = number[self->clause_rule[j]];
            pairs[2 * (j - first) + 1] = self->rule_need[self->clause_rule[j]];
        }
        qsort(pairs, (size_t)(last - first), 2 * sizeof(int32_t), compare_pairs);
    }
    PyMem_Free(by_size);
    PyMem_Free(number);
    return 0;
}

static int
load_rules(KeyScanner *self, PyObject *starts, PyObject *rules, PyObject *need)
{
    Py_ssize_t starts_length, rules_length, need_length;
    if (!(self->clause_rule_start = copy_ints(starts, "clause_rule_start", &starts_length)) ||
        !(self->clause_rule = copy_ints(rules, "clause_rule", &rules_length)) ||
        !(self->rule_need = copy_ints(need, "rule_need", &need_length))) {
        return -1;
    }
    if (need_length > INT32_MAX - 1 || starts_length < 1 || starts_length > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many rules or clauses");
        return -1;
    }
    self->n_rules = (int32_t)need_length;
    self->n_clauses = (int32_t)(starts_length - 1);
    if (check_starts(self->clause_rule_start, starts_length, self->n_clauses, rules_length,
                     "clause_rule_start") < 0 ||
        check_range(self->clause_rule, rules_length, 0, self->n_rules, "clause_rule") < 0 ||
        check_range(self->rule_need, need_length, 0, INT32_MAX, "rule_need") < 0) {
        return -1;
    }
    return number_rules(self);
}

static inline int32_t *
near_range_of(const KeyScanner *self, int32_t check, int32_t field)
{
    return &self->near_range[3 * ((size_t)check * (size_t)self->n_fields + (size_t)field)];
}

/* Entries: (field, side, key, length); per field, which checks each key concerns. */
static int
load_near(KeyScanner *self, PyObject *keys, PyObject *distances, PyObject *starts,
          PyObject *entries)
{
    Py_ssize_t keys_length, distances_length, starts_length, entries_length;
    if (!(self->near_key = copy_ints(keys, "near_key", &keys_length)) ||
        !(self->near_distance = copy_ints(distances, "near_distance", &distances_length)) ||
        !(self->near_entry_start = copy_ints(starts, "near_entry_start", &starts_length)) ||
        !(self->near_entry = copy_ints(entries, "near_entry", &entries_length))) {
        return -1;
    }
    if (keys_length > INT32_MAX / 2 || distances_length != keys_length ||
        entries_length % 4 != 0) {
        PyErr_SetString(PyExc_ValueError,
                        "near_key, near_distance: one per check; near_entry: 4 ints each");
        return -1;
    }
    self->n_checks = (int32_t)keys_length;
    Py_ssize_t n_entries = entries_length / 4;
    if (check_starts(self->near_entry_start, starts_length, self->n_checks, n_entries,
                     "near_entry_start") < 0 ||
        check_range(self->near_key, keys_length, 0, self->n_keys, "near_key") < 0 ||
        check_range(self->near_distance, keys_length, 0, INT32_MAX, "near_distance") < 0) {
        return -1;
    }
    for (int32_t check = 0; check < self->n_checks; check++) {
        for (int32_t i = self->near_entry_start[check]; i < self->near_entry_start[check + 1];
             i++) {
            const int32_t *entry = &self->near_entry[4 * i];
            if (entry[0] < 0 || entry[0] >= self->n_fields || entry[1] < 0 || entry[1] > 1 ||
                entry[2] < 0 || entry[2] >= self->n_keys || entry[3] < 1) {
                PyErr_Format(PyExc_ValueError, "near_entry[%d] is out of range", i);
                return -1;
            }
            if (i > self->near_entry_start[check] &&
                (entry[-4] > entry[0] || (entry[-4] == entry[0] && entry[-3] > entry[1]))) {
                PyErr_Format(PyExc_ValueError, "near_entry[%d]: not sorted by field and side", i);
                return -1;
            }
        }
    }
    self->near_range = PyMem_Malloc(((size_t)self->n_checks * (size_t)self->n_fields * 3 + 1) *
                                    sizeof(int32_t));
    if (self->near_range == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (int32_t check = 0; check < self->n_checks; check++) {
        int32_t at = self->near_entry_start[check], last = self->near_entry_start[check + 1];
        for (int32_t f = 0; f < self->n_fields; f++) {
            int32_t *range = near_range_of(self, check, f);
            while (at < last && self->near_entry[4 * at] < f) {
                at++;
            }
            range[0] = at;
            while (at < last && self->near_entry[4 * at] == f &&
                   self->near_entry[4 * at + 1] == 0) {
                at++;
            }
            range[1] = at;
            while (at < last && self->near_entry[4 * at] == f) {
                at++;
            }
            range[2] = at;
        }
    }
    self->positional = PyMem_Calloc((size_t)self->n_keys + 1, 1);
    self->field_key_check_start = PyMem_Calloc((size_t)self->n_fields + 1, sizeof(int32_t *));
    self->field_key_check = PyMem_Calloc((size_t)self->n_fields + 1, sizeof(int32_t *));
    if (!self->positional || !self->field_key_check_start || !self->field_key_check) {
        PyErr_NoMemory();
        return -1;
    }
    for (int32_t f = 0; f < self->n_fields; f++) {
        int32_t *start = PyMem_Calloc((size_t)self->n_keys + 2, sizeof(int32_t));
        int32_t *checks = PyMem_Malloc((size_t)(n_entries > 0 ? n_entries : 1) * sizeof(int32_t));
        self->field_key_check_start[f] = start;
        self->field_key_check[f] = checks;
        if (start == NULL || checks == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        /* Counting sort of the entries of field f by key: per entry its check and side. */
        for (Py_ssize_t i = 0; i < n_entries; i++) {
            if (self->near_entry[4 * i] == f) {
                start[self->near_entry[4 * i + 2] + 2]++;
            }
        }
        for (int32_t key = 0; key < self->n_keys; key++) {
            start[key + 2] += start[key + 1];
        }
        for (int32_t check = 0; check < self->n_checks; check++) {
            for (int32_t i = self->near_entry_start[check]; i < self->near_entry_start[check + 1];
                 i++) {
                if (self->near_entry[4 * i] == f) {
                    int32_t key = self->near_entry[4 * i + 2];
                    checks[start[key + 1]++] = check << 1 | self->near_entry[4 * i + 1];
                    self->positional[key] = 1;
                }
            }
        }
    }
    for (int32_t node = 0; node < self->n_nodes; node++) { /* load_trie came first */
        if (self->node_key[node] >= 0 && self->positional[self->node_key[node]]) {
            self->node_key[node] |= POSITIONAL_KEY;
        }
    }
    return 0;
}

static PyObject *
KeyScanner_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"n_keys",          "edge_start",        "edge_label",
                            "edge_target",     "node_key",          "field_key_start",
                            "field_key_clause", "clause_rule_start", "clause_rule",
                            "rule_need",       "near_key",          "near_distance",
                            "near_entry_start", "near_entry",       NULL};
    int n_keys;
    PyObject *edge_start, *edge_label, *edge_target, *node_key, *field_key_start,
        *field_key_clause, *clause_rule_start, *clause_rule, *rule_need;
    PyObject *near_key, *near_distance, *near_entry_start, *near_entry;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iOOOOOOOOOOOOO:KeyScanner", names, &n_keys,
                                     &edge_start, &edge_label, &edge_target, &node_key,
                                     &field_key_start, &field_key_clause, &clause_rule_start,
                                     &clause_rule, &rule_need, &near_key, &near_distance,
                                     &near_entry_start, &near_entry)) {
        return NULL;
    }
    if (n_keys < 0 || n_keys >= POSITIONAL_KEY) {
        PyErr_SetString(PyExc_ValueError, "n_keys out of range");
        return NULL;
    }
    KeyScanner *self = (KeyScanner *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->n_keys = n_keys;
    if (load_rules(self, clause_rule_start, clause_rule, rule_need) < 0 ||
        load_trie(self, edge_start, edge_label, edge_target, node_key) < 0 ||
        load_fields(self, field_key_start, field_key_clause) < 0 ||
        load_near(self, near_key, near_distance, near_entry_start, near_entry) < 0 ||
        scratch_init(&self->scratch, self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    PyMem_Free(self->edge_start);
    PyMem_Free(self->edge_label);
    PyMem_Free(self->edge_target);
    PyMem_Free(self->clause_rule);
    PyMem_Free(self->rule_need);
    self->edge_start = self->edge_target = self->clause_rule = self->rule_need = NULL;
    free_per_field(self->field_key_start, self->n_fields);
    free_per_field(self->field_key_clause, self->n_fields);
    self->field_key_start = self->field_key_clause = NULL;
    self->edge_label = NULL;
    return (PyObject *)self;
}

/* --- scanning ------------------------------------------------------------------------ */

/* The node `byte` leads to from `node`, whose step word is `here`; -1 if none. */
static inline int32_t
step(const KeyScanner *self, int32_t node, uint32_t here, uint8_t byte)
{
    /* Tests, not a switch: a jump table cost a third of the walk's instructions. Most steps
     * leave a node with one edge. */
    uint32_t kind = KIND(here);
    if (kind == ONE_EDGE) {
        return REF(here) == byte ? node + 1 : -1;
    }
    if (kind == DENSE) {
        return self->dense[(size_t)REF(here) * self->row_width + self->byte_class[byte]];
    }
    if (kind == SPARSE) {
        const uint32_t *edge = &self->sparse_edges[REF(here)];
        for (const uint32_t *last = edge + SPARSE_COUNT(here); edge < last; edge++) {
            if ((*edge & 0xffu) == byte) {
                return (int32_t)(*edge >> 8);
            }
        }
    }
    return -1;
}

/* Room for `count` items of `item_size` bytes in all in a growable array, grown by
 * doubling; `values` is the address of the array's pointer (of any item type, copied with
 * memcpy rather than written through a cast). 0, or -1 out of memory. */
static int
reserve(void *values, Py_ssize_t *capacity, Py_ssize_t count, size_t item_size)
{
    if (count <= *capacity) {
        return 0;
    }
    Py_ssize_t grown = *capacity > 0 ? *capacity : 16;
    while (grown < count) {
        grown *= 2;
    }
    void *array;
    memcpy(&array, values, sizeof(array));
    void *resized = PyMem_Realloc(array, (size_t)grown * item_size);
    if (resized == NULL) {
        return -1;
    }
    memcpy(values, &resized, sizeof(resized));
    *capacity = grown;
    return 0;
}

/* Counts clause `clause` satisfied for each of its rules, once per call. */
static inline void
satisfy(const KeyScanner *self, Scratch *scratch, int32_t clause, uint32_t call_generation)
{
    ClauseState *state = &scratch->clauses[clause];
    if (state->seen == call_generation) {
        return;
    }
    state->seen = call_generation;
    for (int32_t j = state->first; j < state->last; j++) {
        int32_t rule = self->clause_rule_need[2 * j];
        RuleCount *counter = &scratch->rules[rule];
        if (counter->seen != call_generation) {
            counter->seen = call_generation;
            counter->count = 0;
        }
        /* Each clause of a rule is counted once, so this holds once per rule. */
        if (++counter->count == self->clause_rule_need[2 * j + 1]) {
            scratch->candidates[scratch->candidate_count++] = self->rule_external[rule];
        }
    }
}

/* Records key `key` found in field `field`; `positional`: whether NEAR checks look at it.
 * 0, or -1 out of memory. */
static int
found_key(const KeyScanner *self, Scratch *scratch, int32_t field, int32_t key, int positional,
          uint32_t field_generation, uint32_t call_generation)
{
    if (scratch->key_seen[key] == field_generation) {
        return 0;
    }
    scratch->key_seen[key] = field_generation;
    if (reserve(&scratch->found, &scratch->found_capacity, scratch->found_count + 1,
                sizeof(int32_t)) < 0) {
        return -1;
    }
    scratch->found[scratch->found_count++] = key;
    if (positional) {
        scratch->occ_head[key] = -1;
        /* A check is queued once both its sides have a key found in the field. */
        const int32_t *check_start = self->field_key_check_start[field];
        for (int32_t i = check_start[key]; i < check_start[key + 1]; i++) {
            int32_t entry = self->field_key_check[field][i];
            CheckState *state = &scratch->checks[entry >> 1];
            if (state->seen != field_generation) {
                state->seen = field_generation;
                state->sides = 0;
            }
            if (state->sides != 3 && (state->sides |= 1u << (entry & 1)) == 3) {
                scratch->pending[scratch->pending_count++] = entry >> 1;
            }
        }
    }
    int32_t ref = self->field_key_ref[field][key];
    if (ref >= 0) {
        satisfy(self, scratch, ref, call_generation);
    }
    else if (ref < -1) {
        const int32_t *list = &self->field_key_list[field][-(ref + 2)];
        for (int32_t i = 1; i <= list[0]; i++) {
            satisfy(self, scratch, list[i], call_generation);
        }
    }
    return 0;
}

/* found_key for a node's key (node_key: with POSITIONAL_KEY set for a key NEAR looks at),
 * and for such a key its occurrence at token `position`. */
static int
found_at(const KeyScanner *self, Scratch *scratch, int32_t field, int32_t node_key,
         int32_t position, uint32_t field_generation, uint32_t call_generation)
{
    int32_t key = node_key & ~POSITIONAL_KEY;
    int positional = (node_key & POSITIONAL_KEY) != 0;
    if (found_key(self, scratch, field, key, positional, field_generation, call_generation) < 0) {
        return -1;
    }
    if (!positional) {
        return 0;
    }
    if (reserve(&scratch->occ, &scratch->occ_capacity, 2 * (scratch->occ_count + 1),
                sizeof(int32_t)) < 0) {
        return -1;
    }
    Py_ssize_t index = scratch->occ_count++;
    scratch->occ[2 * index] = position;
    scratch->occ[2 * index + 1] = scratch->occ_head[key];
    scratch->occ_head[key] = (int32_t)index;
    return 0;
}

static int compare_ints(const void *left, const void *right);

/* The occurrences of the keys of entries [first, last): their starts, and their ends. */
static Py_ssize_t
occurrences(const KeyScanner *self, const Scratch *scratch, int32_t first, int32_t last,
            uint32_t field_generation, int32_t *starts, int32_t *ends)
{
    Py_ssize_t count = 0;
    for (int32_t i = first; i < last; i++) {
        const int32_t *entry = &self->near_entry[4 * i];
        if (scratch->key_seen[entry[2]] != field_generation) {
            continue;
        }
        for (int32_t o = scratch->occ_head[entry[2]]; o >= 0; o = scratch->occ[2 * o + 1]) {
            if (starts != NULL) {
                starts[count] = scratch->occ[2 * o];
                ends[count] = scratch->occ[2 * o] + entry[3] - 1;
            }
            count++;
        }
    }
    return count;
}

/* The first index of `values` (ascending) holding more than `limit`. */
static Py_ssize_t
first_above(const int32_t *values, Py_ssize_t count, int32_t limit)
{
    Py_ssize_t low = 0, high = count;
    while (low < high) {
        Py_ssize_t middle = low + (high - low) / 2;
        if (values[middle] <= limit) {
            low = middle + 1;
        }
        else {
            high = middle;
        }
    }
    return low;
}

/* Whether check `check` pairs in this field: a left occurrence with a right one at most its
 * distance after its end or before its start; overlapping ones do not pair (reference.near).
 * Its entries are sorted by (field, side); it is asked only once both sides have a key
 * found in the field. */
static int
check_pairs(const KeyScanner *self, Scratch *scratch, int32_t check, int32_t field,
            uint32_t field_generation)
{
    const int32_t *range = near_range_of(self, check, field);
    int32_t first = range[0], middle = range[1], end = range[2];
    Py_ssize_t lefts = occurrences(self, scratch, first, middle, field_generation, NULL, NULL);
    Py_ssize_t rights = occurrences(self, scratch, middle, end, field_generation, NULL, NULL);
    if (reserve(&scratch->pair_buffer, &scratch->pair_capacity, 2 * (lefts + rights),
                sizeof(int32_t)) < 0) {
        return -1;
    }
    int32_t *left_starts = scratch->pair_buffer, *left_ends = left_starts + lefts;
    int32_t *right_starts = left_ends + lefts, *right_ends = right_starts + rights;
    occurrences(self, scratch, first, middle, field_generation, left_starts, left_ends);
    occurrences(self, scratch, middle, end, field_generation, right_starts, right_ends);
    qsort(right_starts, (size_t)rights, sizeof(int32_t), compare_ints);
    qsort(right_ends, (size_t)rights, sizeof(int32_t), compare_ints);
    int64_t distance = self->near_distance[check];
    for (Py_ssize_t i = 0; i < lefts; i++) {
        int32_t start = left_starts[i], stop = left_ends[i];
        Py_ssize_t after = first_above(right_starts, rights, stop);
        if (after < rights && (int64_t)right_starts[after] - stop <= distance) {
            return 1;
        }
        Py_ssize_t before = first_above(right_ends, rights, start - 1) - 1;
        if (before >= 0 && (int64_t)start - right_ends[before] <= distance) {
            return 1;
        }
    }
    return 0;
}

/* The checks queued in this field: each that pairs is found as its key. */
static int
decide_checks(const KeyScanner *self, Scratch *scratch, int32_t field, uint32_t field_generation,
              uint32_t call_generation)
{
    /* Checks a found check key queues (were it also an entry's key) are taken too. */
    for (Py_ssize_t p = 0; p < scratch->pending_count; p++) {
        int32_t check = scratch->pending[p];
        int pairs = check_pairs(self, scratch, check, field, field_generation);
        int32_t key = self->near_key[check];
        if (pairs < 0 || (pairs && found_key(self, scratch, field, key, self->positional[key],
                                             field_generation, call_generation) < 0)) {
            return -1;
        }
    }
    scratch->pending_count = 0;
    return 0;
}

static int
scan_text(const KeyScanner *self, Scratch *scratch, int32_t field, const uint8_t *text,
          Py_ssize_t length, uint32_t field_generation, uint32_t call_generation)
{
    if (self->after_space < 0) {
        return 0; /* no keys */
    }
    int32_t below = self->after_space;
    uint32_t below_step = self->steps[below];
    const uint8_t *end = text + length;
    int32_t position = 0; /* of the token after this space: the spaces before it */
    for (const uint8_t *space = memchr(text, ' ', (size_t)length); space != NULL;
         space = memchr(space + 1, ' ', (size_t)(end - space - 1)), position++) {
        int32_t node = below;
        uint32_t here = below_step; /* each step word is read once */
        for (const uint8_t *at = space + 1;;) {
            if ((here & HAS_KEY) && found_at(self, scratch, field, self->node_key[node],
                                             position, field_generation, call_generation) < 0) {
                return -1;
            }
            if (at == end || (node = step(self, node, here, *at++)) < 0) {
                break;
            }
            here = self->steps[node];
        }
    }
    return 0;
}

static int
compare_ints(const void *left, const void *right)
{
    int32_t a = *(const int32_t *)left, b = *(const int32_t *)right;
    return (a > b) - (a < b);
}

typedef struct {
    const uint8_t *text; /* NULL: the field is not scanned */
    Py_ssize_t length;
    int32_t *extra; /* key ids found some other way (RE2), or NULL */
    Py_ssize_t extra_count;
} FieldInput;

static void
inputs_free(FieldInput *inputs, int32_t count)
{
    for (int32_t f = 0; f < count; f++) {
        PyMem_Free(inputs[f].extra);
    }
    PyMem_Free(inputs);
}

/* The UTF-8 of a str, lone surrogates encoded as the keys were (surrogatepass); bytes made
 * for that are appended to `keep`, which must outlive their use. NULL on error. */
static const uint8_t *
utf8_of(PyObject *text, PyObject *keep, Py_ssize_t *length)
{
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, length);
    if (utf8 != NULL) {
        return (const uint8_t *)utf8;
    }
    PyErr_Clear();
    PyObject *encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass");
    if (encoded == NULL) {
        return NULL;
    }
    int appended = PyList_Append(keep, encoded);
    Py_DECREF(encoded); /* kept alive by the list */
    if (appended < 0) {
        return NULL;
    }
    *length = PyBytes_GET_SIZE(encoded);
    return (const uint8_t *)PyBytes_AS_STRING(encoded);
}

/* Reads the arguments into C values before any scratch is touched. */
static FieldInput *
read_inputs(const KeyScanner *self, PyObject *texts, PyObject *extra, PyObject **keep)
{
    if (!PyTuple_Check(texts) || PyTuple_GET_SIZE(texts) != self->n_fields) {
        PyErr_Format(PyExc_ValueError, "texts: expected a tuple of %d items", self->n_fields);
        return NULL;
    }
    if (extra != Py_None && (!PyTuple_Check(extra) || PyTuple_GET_SIZE(extra) != self->n_fields)) {
        PyErr_Format(PyExc_ValueError, "extra: expected None or a tuple of %d items",
                     self->n_fields);
        return NULL;
    }
    FieldInput *inputs = PyMem_Calloc((size_t)self->n_fields + 1, sizeof(FieldInput));
    if (inputs == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (int32_t f = 0; f < self->n_fields; f++) {
        PyObject *text = PyTuple_GET_ITEM(texts, f);
        if (text != Py_None) {
            if (!PyUnicode_Check(text)) {
                PyErr_SetString(PyExc_TypeError, "texts: expected str or None");
                goto fail;
            }
            inputs[f].text = utf8_of(text, *keep, &inputs[f].length);
            if (inputs[f].text == NULL) {
                goto fail;
            }
        }
        PyObject *keys = extra == Py_None ? Py_None : PyTuple_GET_ITEM(extra, f);
        if (keys == Py_None) {
            continue;
        }
        PyObject *fast = PySequence_Fast(keys, "extra: expected sequences of key ids");
        if (fast == NULL) {
            goto fail;
        }
        Py_ssize_t count = PySequence_Fast_GET_SIZE(fast);
        inputs[f].extra = PyMem_Malloc((size_t)(count > 0 ? count : 1) * sizeof(int32_t));
        if (inputs[f].extra == NULL) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            long key = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
            if (key == -1 && PyErr_Occurred()) {
                Py_DECREF(fast);
                goto fail;
            }
            if (key < 0 || key >= self->n_keys) {
                continue; /* not a key: RE2's sentinel */
            }
            inputs[f].extra[inputs[f].extra_count++] = (int32_t)key;
        }
        Py_DECREF(fast);
    }
    return inputs;
fail:
    inputs_free(inputs, self->n_fields);
    return NULL;
}

static PyObject *
int_list(const int32_t *values, Py_ssize_t count)
{
    PyObject *list = PyList_New(count);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = PyLong_FromLong(values[i]);
        if (value == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, value);
    }
    return list;
}

/* (candidates, flags): the rules with every clause satisfied, ascending, and per key id a
 * byte whose bit f tells that field f has the key. */
static PyObject *
build_result(const KeyScanner *self, const Scratch *scratch, const Py_ssize_t *field_end)
{
    PyObject *flags = PyBytes_FromStringAndSize(NULL, self->n_keys);
    if (flags == NULL) {
        return NULL;
    }
    uint8_t *bits = (uint8_t *)PyBytes_AS_STRING(flags);
    memset(bits, 0, (size_t)self->n_keys);
    Py_ssize_t start = 0;
    for (int32_t f = 0; f < self->n_fields; f++) {
        for (Py_ssize_t i = start; i < field_end[f]; i++) {
            bits[scratch->found[i]] |= (uint8_t)(1u << f);
        }
        start = field_end[f];
    }
    PyObject *candidates = int_list(scratch->candidates, scratch->candidate_count);
    if (candidates == NULL) {
        Py_DECREF(flags);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, candidates, flags);
    Py_DECREF(candidates);
    Py_DECREF(flags);
    return result;
}

static int
scan_all(const KeyScanner *self, Scratch *scratch, const FieldInput *inputs, Py_ssize_t *field_end)
{
    if (scratch->generation > UINT32_MAX - (uint32_t)self->n_fields - 2) {
        memset(scratch->key_seen, 0, (size_t)self->n_keys * sizeof(uint32_t));
        for (int32_t clause = 0; clause < self->n_clauses; clause++) {
            scratch->clauses[clause].seen = 0;
        }
        memset(scratch->rules, 0, (size_t)self->n_rules * sizeof(RuleCount));
        memset(scratch->checks, 0, (size_t)self->n_checks * sizeof(CheckState));
        scratch->generation = 0;
    }
    uint32_t call_generation = ++scratch->generation;
    scratch->candidate_count = 0;
    scratch->found_count = 0;
    for (int32_t f = 0; f < self->n_fields; f++) {
        uint32_t field_generation = ++scratch->generation;
        scratch->occ_count = 0;
        scratch->pending_count = 0;
        if (inputs[f].text != NULL &&
            (scan_text(self, scratch, f, inputs[f].text, inputs[f].length, field_generation,
                       call_generation) < 0 ||
             decide_checks(self, scratch, f, field_generation, call_generation) < 0)) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < inputs[f].extra_count; i++) {
            int32_t key = inputs[f].extra[i];
            if (found_key(self, scratch, f, key, self->positional[key], field_generation,
                          call_generation) < 0) {
                return -1;
            }
        }
        field_end[f] = scratch->found_count;
    }
    qsort(scratch->candidates, (size_t)scratch->candidate_count, sizeof(int32_t), compare_ints);
    return 0;
}

static PyObject *
KeyScanner_scan(KeyScanner *self, PyObject *args)
{
    PyObject *texts, *extra = Py_None;
    if (!PyArg_ParseTuple(args, "O|O:scan", &texts, &extra)) {
        return NULL;
    }
    PyObject *keep = PyList_New(0); /* bytes made for texts with lone surrogates */
    if (keep == NULL) {
        return NULL;
    }
    FieldInput *inputs = read_inputs(self, texts, extra, &keep);
    if (inputs == NULL) {
        Py_DECREF(keep);
        return NULL;
    }
    Scratch own, *scratch = &self->scratch;
    int borrowed = !self->busy;
    if (!borrowed) {
        if (scratch_init(&own, self) < 0) {
            inputs_free(inputs, self->n_fields);
            Py_DECREF(keep);
            return NULL;
        }
        scratch = &own;
    }
    else {
        self->busy = 1;
    }
    Py_ssize_t field_end[8];
    PyObject *result = NULL;
    if (scan_all(self, scratch, inputs, field_end) < 0) {
        PyErr_NoMemory();
    }
    else {
        result = build_result(self, scratch, field_end);
    }
    if (borrowed) {
        self->busy = 0;
    }
    else {
        scratch_free(&own);
    }
    inputs_free(inputs, self->n_fields);
    Py_DECREF(keep);
    return result;
}

/* --- outermost occurrences ------------------------------------------------------- */

typedef struct {
    Py_ssize_t start, end; /* bytes, end excluded */
    Py_ssize_t key;
} Span;

static int
compare_spans(const void *left, const void *right)
{
    const Span *a = left, *b = right;
    if (a->start != b->start) {
        return a->start < b->start ? -1 : 1;
    }
    if (a->end != b->end) {
        return a->end > b->end ? -1 : 1; /* the longer first */
    }
    return (a->key > b->key) - (a->key < b->key);
}

/* outermost(text, keys): the indexes of `keys` that occur in `text` outside every longer
 * occurrence of any of them, each once, in the order of its first such occurrence. Keys
 * are whole tokens with a space at both ends, as the scan's are, so an occurrence lies
 * inside another exactly when its bytes do; of two at the same place the earlier key
 * stays. What compiled.py's entity hits need, without a str.find per occurrence. */
static PyObject *
keyscan_outermost(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *text, *keys;
    if (!PyArg_ParseTuple(args, "UO!:outermost", &text, &PyTuple_Type, &keys)) {
        return NULL;
    }
    Py_ssize_t n_keys = PyTuple_GET_SIZE(keys);
    PyObject *keep = PyList_New(0);
    if (keep == NULL) {
        return NULL;
    }
    PyObject *result = NULL;
    Span *spans = NULL;
    uint8_t *listed = NULL;
    Py_ssize_t count = 0, capacity = 0, length;
    const uint8_t *haystack = utf8_of(text, keep, &length);
    if (haystack == NULL) {
        goto done;
    }
    for (Py_ssize_t k = 0; k < n_keys; k++) {
        PyObject *key = PyTuple_GET_ITEM(keys, k);
        Py_ssize_t size;
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "keys: expected a tuple of str");
            goto done;
        }
        const uint8_t *needle = utf8_of(key, keep, &size);
        if (needle == NULL) {
            goto done;
        }
        if (size == 0) {
            PyErr_SetString(PyExc_ValueError, "keys: an empty key");
            goto done;
        }
        const uint8_t *at = haystack, *end = haystack + length;
        while (end - at >= size && (at = memmem(at, (size_t)(end - at), needle, (size_t)size))) {
            if (reserve(&spans, &capacity, count + 1, sizeof(Span)) < 0) {
                PyErr_NoMemory();
                goto done;
            }
            spans[count++] = (Span){at - haystack, at - haystack + size, k};
            at++; /* overlapping occurrences too */
        }
    }
    qsort(spans, (size_t)count, sizeof(Span), compare_spans);
    listed = PyMem_Calloc((size_t)n_keys + 1, 1);
    result = PyList_New(0);
    if (listed == NULL || result == NULL) {
        Py_CLEAR(result);
        if (listed == NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    Py_ssize_t reach = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (spans[i].end <= reach) {
            continue; /* inside an earlier occurrence */
        }
        reach = spans[i].end;
        if (!listed[spans[i].key]) {
            listed[spans[i].key] = 1;
            PyObject *index = PyLong_FromSsize_t(spans[i].key);
            if (index == NULL || PyList_Append(result, index) < 0) {
                Py_XDECREF(index);
                Py_CLEAR(result);
                goto done;
            }
            Py_DECREF(index);
        }
    }
done:
    PyMem_Free(spans);
    PyMem_Free(listed);
    Py_DECREF(keep);
    return result;
}

static PyMethodDef keyscan_functions[] = {
    {"outermost", keyscan_outermost, METH_VARARGS,
     "outermost(text, keys) -> list of indexes of keys\n\n"
     "The keys that occur in text outside every longer occurrence of one of them, each "
     "once, in the order of its first such occurrence."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef KeyScanner_methods[] = {
    {"scan", (PyCFunction)KeyScanner_scan, METH_VARARGS,
     "scan(texts, extra=None) -> (candidates, flags)\n\n"
     "texts: per field its padded text or None. extra: None or per field key ids found "
     "otherwise. candidates: the rules whose clauses all hold, ascending. flags: per key id "
     "a byte, bit f set when field f has the key."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KeyScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "watcher.rules._keyscan.KeyScanner",
    .tp_basicsize = sizeof(KeyScanner),
    .tp_dealloc = (destructor)KeyScanner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Keys, clauses and rules compiled into flat tables; see compiled.py.",
    .tp_methods = KeyScanner_methods,
    .tp_new = KeyScanner_new,
};

static struct PyModuleDef keyscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "watcher.rules._keyscan",
    .m_doc = "The compiled matcher's key scan and clause count.",
    .m_size = -1,
    .m_methods = keyscan_functions,
};

PyMODINIT_FUNC
PyInit__keyscan(void)
{
    if (PyType_Ready(&KeyScannerType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&keyscan_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&KeyScannerType);
    if (PyModule_AddObject(module, "KeyScanner", (PyObject *)&KeyScannerType) < 0) {
        Py_DECREF(&KeyScannerType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
