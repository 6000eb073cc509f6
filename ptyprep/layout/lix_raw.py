"""The LiX raw layout (NSLS-II 16-ID, written by bluesky): every HDF5 name.

One file holds one group per scan (a "sample")::

    raw.h5
      /{sample} @start                 JSON of the bluesky start document
         primary/
            time (N,)                  exposure start times, s (epoch)
            data/<detector> (N, H, W)  frames of each detector (pil1M_image, pilW1_image, ...)
            data/<motor> (N,)          recorded motor positions (names from start["motors"])
            data/<monitor> (N,)        monitors read with every frame
            timestamps/<field> (N,)    time of each reading, s
         <stream>/                     another stream (e.g. em_monitors of a fly scan)
            time (M,), data/<field> (M,), timestamps/<field> (M,)

The start document gives ``shape`` [n_slow, n_fast], ``motors`` [slow, fast],
``plan_name`` (``"raster"`` snakes), ``snaking`` (the fast axis' entry decides) and
``pilatus.exposure_time`` (s; the window over which a monitor of another stream is
averaged).  The reader is :mod:`ptyprep.sources.nsls2_lix` (``[source] name = "nsls2-lix"``);
the simulated scans of ``ptyprep demo --kind saxs`` are written in this layout.
"""

ATTR_START = "start"
PRIMARY = "primary"
DATA = "data"
TIME = "time"
TIMESTAMPS = "timestamps"

# start-document keys
START_SHAPE, START_MOTORS, START_PLAN, START_SNAKING = "shape", "motors", "plan_name", "snaking"
START_DETECTOR, START_EXPOSURE = "pilatus", "exposure_time"
RASTER = "raster"

#: The ion-chamber monitors before and after the sample.
INCIDENT = "em1_sum_all_mean_value"
TRANSMITTED = "em2_sum_all_mean_value"
#: Detector datasets and the suffix LiX gives their processed data.
DETECTORS = {"pil1M_image": "_SAXS", "pilW1_image": "_WAXS1", "pilW2_image": "_WAXS2"}
