/* A test-only hook preloaded into gimp-console-3.0 so a batch script can really undo.
 *
 * GIMP 3.0's PDB can open and close undo groups but cannot perform an undo or show the undo
 * stack. gimp-console exports its core functions, so this library, preloaded with LD_PRELOAD,
 * catches the core `Gimp` object when it is created (by interposing g_object_new, which the
 * executable calls through the PLT), then polls $LAMA_UNDO_HOOK/request from GIMP's own main
 * loop. A request is "depth ID" or "undo ID" (an image id); the reply, written atomically to
 * $LAMA_UNDO_HOOK/reply, is "<depth|undone|failed> DEPTH TOP-UNDO-NAME" taken before the undo.
 *
 * Deliberately header-free (the GLib/GIMP prototypes below are the few we need), so it builds
 * with any host C compiler and links against nothing: the symbols resolve inside gimp-console.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef unsigned long GType;
typedef int gboolean;
typedef void *gpointer;
typedef gboolean (*GSourceFunc)(gpointer);

extern gpointer g_object_new_valist(GType type, const char *first_property, va_list args);
extern const char *g_type_name(GType type);
extern unsigned g_timeout_add(unsigned interval, GSourceFunc function, gpointer data);
extern gpointer gimp_image_get_by_id(gpointer gimp, int id);
extern gboolean gimp_image_undo(gpointer image);
extern gpointer gimp_image_get_undo_stack(gpointer image);
extern int gimp_undo_stack_get_depth(gpointer stack);
extern gpointer gimp_undo_stack_peek(gpointer stack);
extern const char *gimp_object_get_name(gpointer object);

static gpointer the_gimp;
static char hook_dir[2048];

__attribute__((constructor)) static void keep_children_clean(void)
{
  /* Only gimp-console itself needs the hook; plug-in processes must not inherit it. */
  const char *dir = getenv("LAMA_UNDO_HOOK");
  if (dir)
    snprintf(hook_dir, sizeof hook_dir, "%s", dir);
  unsetenv("LD_PRELOAD");
}

static void answer(const char *text)
{
  char tmp[2200], final[2200];
  snprintf(tmp, sizeof tmp, "%s/reply.tmp", hook_dir);
  snprintf(final, sizeof final, "%s/reply", hook_dir);
  FILE *out = fopen(tmp, "w");
  if (!out)
    return;
  fprintf(out, "%s\n", text);
  fclose(out);
  rename(tmp, final);
}

static gboolean poll_request(gpointer unused)
{
  char path[2200], command[32], reply[1200];
  int id = -1;
  (void) unused;
  snprintf(path, sizeof path, "%s/request", hook_dir);
  FILE *in = fopen(path, "r");
  if (!in)
    return 1;
  int fields = fscanf(in, "%31s %d", command, &id);
  fclose(in);
  unlink(path);
  gpointer image = fields == 2 ? gimp_image_get_by_id(the_gimp, id) : NULL;
  if (!image)
    {
      snprintf(reply, sizeof reply, "error no-image-%d", id);
    }
  else
    {
      gpointer stack = gimp_image_get_undo_stack(image);
      gpointer top = gimp_undo_stack_peek(stack);
      const char *name = top ? gimp_object_get_name(top) : "";
      int depth = gimp_undo_stack_get_depth(stack);
      const char *verb = "depth";
      if (strcmp(command, "undo") == 0)
        verb = gimp_image_undo(image) ? "undone" : "failed";
      snprintf(reply, sizeof reply, "%s %d %s", verb, depth, name ? name : "");
    }
  answer(reply);
  return 1; /* keep polling */
}

gpointer g_object_new(GType type, const char *first_property, ...)
{
  va_list args;
  va_start(args, first_property);
  gpointer object = g_object_new_valist(type, first_property, args);
  va_end(args);
  if (!the_gimp && hook_dir[0] && strcmp(g_type_name(type), "Gimp") == 0)
    {
      the_gimp = object;
      g_timeout_add(20, poll_request, NULL);
    }
  return object;
}
