/* The task table: one row per task. */
#include "runner/task.h"

static const struct dk_task_ops *const table[] = {
	[DK_TASK_SUMMARIZE] = &dk_task_summarize,
	[DK_TASK_CLASSIFY] = &dk_task_classify,
	[DK_TASK_EXTRACT] = &dk_task_extract,
	[DK_TASK_GENERATE] = &dk_task_generate,
};

const struct dk_task_ops *dk_task_ops(enum dk_task t)
{
	return (size_t)t < sizeof table / sizeof *table ? table[t] : NULL;
}
